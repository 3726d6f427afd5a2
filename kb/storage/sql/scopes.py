"""A `DocumentScope` compiled to one condition on `documents` rows, scoped by workspace.

A selection's folders expand in SQL (a recursive CTE over the folders below them, by the
(workspace, parent) index), so a scope of 20,000 documents costs one statement, never an IN-list
of their ids.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select, union

from ...records import DocumentScope, Selection
from ..schema import documents
from .attributes import compile_filter


def in_workspace(workspace_id: str):
    """`documents.workspace_id == workspace_id` in a form no index answers: beside a lookup by id,
    SQLite then looks the ids up and checks the workspace on the rows found, instead of reading every
    index entry of the workspace (without statistics it prefers the (workspace, ...) indexes)."""
    return func.coalesce(documents.c.workspace_id, "") == workspace_id


def folders_below(workspace_id: str, folder_ids: tuple[str, ...], name: str):
    """A recursive CTE of the workspace's folders among `folder_ids` and every folder below them. Its
    UNION keeps each folder once, so it ends however the folders nest."""
    top = select(documents.c.id).where(
        documents.c.id.in_(list(folder_ids)), in_workspace(workspace_id), documents.c.type == "folder"
    )
    tree = top.cte(name, recursive=True)
    below = documents.alias(f"{name}_child")
    step = select(below.c.id).where(
        below.c.workspace_id == workspace_id, below.c.parent_folder_id == tree.c.id, below.c.type == "folder"
    )
    return tree.union(step)


def _selected(workspace_id: str, selection: Selection, name: str):
    """A SELECT of the ids of the workspace's documents (not folders) in `selection`: index lookups
    by id, and by (workspace, parent) below the folders (a UNION of both), never a scan of the workspace."""
    parts = []
    own = (documents.c.workspace_id == workspace_id, documents.c.type != "folder")
    if selection.document_ids:
        parts.append(select(documents.c.id).where(documents.c.id.in_(list(dict.fromkeys(selection.document_ids))),
                                                  in_workspace(workspace_id), documents.c.type != "folder"))
    if selection.folder_ids:
        tree = folders_below(workspace_id, tuple(dict.fromkeys(selection.folder_ids)), name)
        parts.append(select(documents.c.id).where(*own, documents.c.parent_folder_id.in_(select(tree.c.id))))
    if not parts:
        return select(documents.c.id).where(*own, documents.c.id.in_([]))  # selects nothing
    return parts[0] if len(parts) == 1 else union(*parts)


def in_scope(workspace_id: str, scope: DocumentScope):
    """A SELECT of the ids of the workspace's documents (not folders) in `scope`.

    With selections, the first drives: the rows are looked up by id among its documents (each of
    its parts is scoped by workspace), the others, `excluded` and the filter checked on them."""
    if not scope.selections:
        conditions = [documents.c.workspace_id == workspace_id, documents.c.type != "folder"]
    else:
        first = _selected(workspace_id, scope.selections[0], "scope_0")
        if len(scope.selections) == 1 and not scope.excluded and scope.filter is None:
            return first
        conditions = [documents.c.id.in_(first)]
        conditions += [documents.c.id.in_(_selected(workspace_id, s, f"scope_{n}"))
                       for n, s in enumerate(scope.selections[1:], 1)]
    if scope.excluded:
        conditions.append(documents.c.id.not_in(list(dict.fromkeys(scope.excluded))))
    if scope.filter is not None:
        conditions.append(compile_filter(workspace_id, scope.filter))
    return select(documents.c.id).where(and_(*conditions))
