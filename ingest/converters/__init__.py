"""One module per format. Each exposes `convert(data, limits, content_type) -> ParsedDocument`;
the text formats also `convert_text(text)` for `ingest.parse_text`. Converters may raise
any exception on damaged input: `ingest.parse` wraps it in `CorruptDocument`."""
