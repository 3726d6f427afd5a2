"""The SQL repositories implement the storage interfaces services are typed against, method for method."""

from __future__ import annotations

import inspect

import pytest

from kb.storage import repositories
from kb.storage.sql import agents, chunks, documents, generations, jobs, rag_indexes, schedules, workspaces

PAIRS = [
    (repositories.WorkspaceStore, workspaces.WorkspaceRepository),
    (repositories.DocumentStore, documents.DocumentRepository),
    (repositories.RagIndexStore, rag_indexes.RagIndexRepository),
    (repositories.ChunkStore, chunks.ChunkRepository),
    (repositories.GenerationStore, generations.GenerationRepository),
    (repositories.AgentStore, agents.AgentRepository),
    (repositories.JobStore, jobs.JobRepository),
    (repositories.ScheduleStore, schedules.ScheduleRepository),
]


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items() if callable(fn) and not name.startswith("_")}


@pytest.mark.parametrize("interface, implementation", PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_each_repository_implements_its_interface(interface, implementation):
    wanted, given = _methods(interface), _methods(implementation)
    assert wanted.keys() == given.keys()
    for name, signature in wanted.items():
        assert list(signature.parameters) == list(given[name].parameters), name
