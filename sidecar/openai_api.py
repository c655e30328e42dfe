"""What the sidecar knows of the OpenAI HTTP API: which endpoints carry a model, how paths map
to operations and to GenAI operation names. Everything else under ``/v1`` is forwarded as is.
"""

from __future__ import annotations

from typing import Final

# Endpoints whose JSON body we understand (model, stream, usage); POST only.
MODEL_ENDPOINTS: Final = frozenset(
    {"chat/completions", "responses", "completions", "embeddings", "images/generations",
     "moderations"}
)  # fmt: skip
# The model a moderation request names when it names none (as the API chooses by default).
DEFAULT_MODERATION_MODEL: Final = "omni-moderation-latest"

# Streamed endpoints where the upstream sends usage only when asked (stream_options).
STREAM_USAGE_ENDPOINTS: Final = frozenset({"chat/completions", "completions"})

_PATH_OPERATIONS: Final = {
    "chat/completions": "chat",
    "responses": "chat",
    "completions": "chat",
    "embeddings": "embedding",
}

# First path segments of the OpenAI API that become their own operation; any other path is
# "other", so a client cannot mint new operations (metric series, statistics) at will.
API_SEGMENTS: Final = frozenset(
    {
        "models", "files", "uploads", "batches", "moderations", "audio", "fine_tuning",
        "vector_stores", "assistants", "threads", "realtime", "conversations", "containers",
        "evals", "videos",
    }
)  # fmt: skip
OTHER_OPERATION: Final = "other"

# gen_ai.operation.name for each model endpoint (well-known values where the conventions have one).
GEN_AI_OPERATIONS: Final = {
    "chat/completions": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "images/generations": "image_generation",
    "moderations": "moderation",
}


def operation_for_path(path: str) -> str:
    """SPEC "Request identity": the operation a path belongs to when no header names one."""
    if path in _PATH_OPERATIONS:
        return _PATH_OPERATIONS[path]
    first = path.split("/", 1)[0]
    if first == "images":
        return "image-generation"
    return first if first in API_SEGMENTS else OTHER_OPERATION


def is_model_call(method: str, path: str) -> bool:
    return method == "POST" and path in MODEL_ENDPOINTS
