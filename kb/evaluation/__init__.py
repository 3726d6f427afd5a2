"""Evaluating a workspace's retrieval against a file of questions (`kb eval`): the questions, how a
ranked list is judged, the metrics, and the suggested `max_vector_distance`."""

from .metrics import ndcg, recall, reciprocal_rank
from .questions import Question, load_questions, parse_questions
from .report import Asked, CutEffect, EvalReport, Hit, ModeScores, evaluate, suggest_cut

__all__ = ["Asked", "CutEffect", "EvalReport", "Hit", "ModeScores", "Question", "evaluate", "load_questions", "ndcg",
           "parse_questions", "recall", "reciprocal_rank", "suggest_cut"]
