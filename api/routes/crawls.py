"""Crawl jobs: crawl a website into a folder of URL documents, in the background.

Registered before the per-document routes: `/crawl` must not be taken for a document id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kb.records import CrawlJob

from .. import presenters
from ..crawl_schemas import CrawlJobListResponse, CrawlJobRequest, CrawlJobResponse, CreateCrawlJobResponse
from ..deps import KB, CurrentWorkspace

router = APIRouter(prefix="/v1/convai/knowledge-base/crawl", tags=["crawl jobs"])


def present(crawl: CrawlJob) -> CrawlJobResponse:
    return CrawlJobResponse(
        id=crawl.id, type=crawl.type, seed_url=crawl.seed_url, pattern=crawl.pattern,
        exclude_patterns=list(crawl.exclude_patterns), sitemap_urls=list(crawl.sitemap_urls), max_pages=crawl.max_pages,
        auto_discover=crawl.auto_discover, enable_auto_sync=crawl.enable_auto_sync, auto_remove=crawl.auto_remove,
        minimum_frequency_days=crawl.minimum_frequency_days, status=crawl.status, reason=crawl.reason,
        pages_identified=crawl.pages_identified, pages_scraped=crawl.pages_scraped, pages_skipped=crawl.pages_skipped,
        pages_failed=crawl.pages_failed, root_folder_id=crawl.root_folder_id, created_at=int(crawl.created_at),
        updated_at=int(crawl.updated_at),
    )


@router.post("", response_model=CreateCrawlJobResponse, summary="Crawl a website into a folder of URL documents")
def create_crawl_job(body: CrawlJobRequest, kb: KB, workspace: CurrentWorkspace) -> CreateCrawlJobResponse:
    """The crawl runs in the background: poll `GET /crawl/{id}`. Each page kept becomes a URL document
    in the root folder (named after the site); `max_depth` is accepted and ignored."""
    crawl = kb.crawls.create(workspace, body.to_request())
    return CreateCrawlJobResponse(
        id=crawl.id, type=crawl.type or "sitemap", root_folder_id=crawl.root_folder_id, status=crawl.status,
        created_at=int(crawl.created_at), folder_path=presenters.folder_path(kb, workspace, body.parent_folder_id),
    )


@router.get("", response_model=CrawlJobListResponse, summary="Crawl jobs of this workspace, newest first")
def list_crawl_jobs(
    kb: KB,
    workspace: CurrentWorkspace,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    include_job_ids: Annotated[list[str] | None, Query(description="Crawl jobs to include in the first page too")] = None,
) -> CrawlJobListResponse:
    page = kb.crawls.list(workspace, page_size=page_size, cursor=cursor, include_job_ids=tuple(include_job_ids or ()))
    return CrawlJobListResponse(crawl_jobs=[present(c) for c in page.crawl_jobs], next_cursor=page.next_cursor)


@router.get("/{crawl_job_id}", response_model=CrawlJobResponse, summary="A crawl job: status and counters")
def get_crawl_job(crawl_job_id: str, kb: KB, workspace: CurrentWorkspace) -> CrawlJobResponse:
    return present(kb.crawls.get(workspace, crawl_job_id))


@router.post("/{crawl_job_id}/cancel", response_model=CrawlJobResponse,
             summary="Cancel a running crawl and delete its documents and folders")
def cancel_crawl_job(crawl_job_id: str, kb: KB, workspace: CurrentWorkspace) -> CrawlJobResponse:
    """409 if the crawl has ended: delete its root folder to remove its documents."""
    return present(kb.crawls.cancel(workspace, crawl_job_id))
