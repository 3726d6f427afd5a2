"""The metadata repositories in portable SQLAlchemy Core: every statement kb runs is in this package
(and in the dialect modules beside it). They take an open transaction and return records."""
