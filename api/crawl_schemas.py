"""Bodies of the crawl-job endpoints and the auto-sync fields of documents, shaped like the SDK's models
(`CreateCrawlJobResponseModel`, `GetCrawlJobResponseModel`, `AutoSyncInfo`, `FileRefreshStatus`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, Strict

from kb.services.crawls import CrawlRequest

from .schemas import MAX_ID_CHARS, CrawlStatus, Flag, FolderSegment

MAX_URL_CHARS = 8_192
MAX_LIST_ITEMS = 100  # patterns and sitemaps: the crawler's own limits
Count = Annotated[int, Strict()]

CrawlType = Literal["discovery", "sitemap"]


class CrawlJobRequest(BaseModel):
    url: str = Field(max_length=MAX_URL_CHARS, description="The page the crawl starts from; only pages of its site are crawled.")
    max_depth: Count | None = Field(default=None, description="Accepted and ignored (the SDK deprecates it).")
    max_pages: Count | None = Field(default=None, description="Pages identified at most, 1 to 10,000 (default 1,000).")
    pattern: str | None = Field(default=None, description="Only URLs matching this pattern are kept (`*` wildcards; `/docs` a path prefix).")
    exclude_patterns: list[str] | None = Field(default=None, max_length=MAX_LIST_ITEMS,
                                               description="URLs matching any of these are skipped (at most 100).")
    sitemap_urls: list[str] | None = Field(default=None, max_length=MAX_LIST_ITEMS,
                                           description="Sitemaps (or pages) to crawl instead of discovering them (at most 100).")
    parent_folder_id: str | None = Field(default=None, max_length=MAX_ID_CHARS, description="Folder the crawl's root folder is made in.")
    enable_auto_sync: Flag | None = Field(default=None, description="Keep the crawled pages in sync with the site.")
    auto_remove: Flag | None = Field(default=None, description="With auto-sync: remove pages that are gone.")
    auto_discover: Flag | None = Field(default=None, description="With auto-sync: add new pages found at each sync.")
    minimum_frequency_days: Count | None = Field(default=None, description="With auto-sync: days between syncs at most (1-365, default 7).")

    def to_request(self) -> CrawlRequest:
        """The service's request (the API and the dashboard both start crawls from this body)."""
        return CrawlRequest(
            url=self.url, max_pages=self.max_pages, pattern=self.pattern,
            exclude_patterns=tuple(self.exclude_patterns or ()), sitemap_urls=tuple(self.sitemap_urls or ()),
            parent_folder_id=self.parent_folder_id, enable_auto_sync=self.enable_auto_sync,
            auto_remove=self.auto_remove, auto_discover=self.auto_discover,
            minimum_frequency_days=self.minimum_frequency_days,
        )


class CreateCrawlJobResponse(BaseModel):
    id: str
    type: CrawlType = Field(description="sitemap while the site's sitemaps are tried first; GET gives the type the crawl settled on.")
    root_folder_id: str
    status: CrawlStatus
    created_at: int
    folder_path: list[FolderSegment] = Field(default_factory=list, description="From the root to the root folder's parent.")


class CrawlJobResponse(BaseModel):
    id: str
    type: CrawlType | None = None
    seed_url: str
    pattern: str | None = None
    exclude_patterns: list[str] = []
    sitemap_urls: list[str] = Field(default_factory=list, description="kb: the sitemaps asked for.")
    max_pages: int
    auto_discover: bool
    enable_auto_sync: bool = Field(description="kb: whether the crawled pages are auto-synced.")
    auto_remove: bool = Field(description="kb: whether pages that are gone are removed at a sync.")
    minimum_frequency_days: int | None = Field(default=None, description="kb: days between syncs at most.")
    status: CrawlStatus
    reason: str | None = Field(default=None, description="kb: how the crawl ended (or why it failed).")
    pages_identified: int
    pages_scraped: int
    pages_skipped: int
    pages_failed: int
    root_folder_id: str
    created_at: int
    updated_at: int


class CrawlJobListResponse(BaseModel):
    crawl_jobs: list[CrawlJobResponse]
    next_cursor: str | None = None
