"""File import: posts from a JSONL or CSV export (another tool's archive, a platform's data download).

The provider only reads; storing is the ingest pipeline's job, fed in batches from
:meth:`FileProvider.iter_records` so that a large file needs neither one transaction nor all of memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field

from caredesk.connectors.base import Capability, FetchResult, Provider, ProviderConfig
from caredesk.connectors.builtin.file.parser import (
    Format,
    ParsedRecord,
    Source,
    detect_format,
    iter_records,
    parse,
    post_from_record,
)


class FileConfig(ProviderConfig):
    platform: str = Field(default="x", min_length=1, max_length=40)
    text_column: str = Field(
        default="text", min_length=1, description="The field that holds the post's text."
    )


class FileProvider(Provider[FileConfig]):
    """Imports posts from files; it cannot poll or reply."""

    key: ClassVar[str] = "file"
    display_name: ClassVar[str] = "File import (JSONL or CSV)"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.IMPORT})
    config_model: ClassVar[type[ProviderConfig]] = FileConfig

    @property
    def platform(self) -> str:
        return self.config.platform

    def iter_records(self, source: Source, format: Format | None = None) -> Iterator[ParsedRecord]:
        """See :func:`caredesk.connectors.builtin.file.parser.iter_records`."""
        return iter_records(source, format, text_column=self.config.text_column)

    def parse(self, source: Source, format: Format | None = None) -> FetchResult:
        """See :func:`caredesk.connectors.builtin.file.parser.parse`."""
        return parse(source, format, text_column=self.config.text_column)


__all__ = [
    "FileConfig",
    "FileProvider",
    "Format",
    "ParsedRecord",
    "Source",
    "detect_format",
    "iter_records",
    "parse",
    "post_from_record",
]
