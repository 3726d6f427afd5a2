"""The `kb` command group."""

from __future__ import annotations

import logging
import os

import click

from .logs import configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """kb: a self-hosted knowledge base with RAG retrieval for voice and chat agents."""
    configure_logging(logging.INFO if verbose else logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
