"""Google Gemini (Generative Language API) wire types: requests we build, answers we read.

Field names are camelCase on the wire (`rename="camel"`); unset optional fields are left out
(`omit_defaults=True`). Opaque subtrees (function arguments, JSON schemas, function results)
stay `msgspec.Raw`. Docs: https://ai.google.dev/api/generate-content and
https://ai.google.dev/api/embeddings#method:-models.batchembedcontents
"""

from __future__ import annotations

import msgspec

__all__ = [
    "BatchEmbedContentsRequest",
    "BatchEmbedContentsResponse",
    "Blob",
    "Candidate",
    "Content",
    "ContentEmbedding",
    "EmbedContentRequest",
    "ErrorEnvelope",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "GenerationConfig",
    "GoogleError",
    "Part",
    "PromptFeedback",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "UsageMetadata",
    "decode_embeddings",
    "decode_error",
    "decode_response",
    "encode",
]


class _Wire(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Base of every Gemini wire type: frozen, camelCase names, unset fields omitted."""


class Blob(_Wire, frozen=True):
    """`inlineData`: base64 bytes with their MIME type."""

    mime_type: str
    data: str


class FileData(_Wire, frozen=True):
    """`fileData`: a URI the API fetches itself."""

    file_uri: str
    mime_type: str | None = None


class FunctionCall(_Wire, frozen=True):
    """A function call the model made (or an earlier one sent back): name and JSON args."""

    name: str
    args: msgspec.Raw = msgspec.Raw()
    """The JSON object bytes; empty when absent (msgspec cannot decode `Raw | None`)."""
    id: str | None = None


class FunctionResponse(_Wire, frozen=True):
    """The result of a function call, sent back to the model; `response` is a JSON object."""

    name: str
    response: msgspec.Raw


class Part(_Wire, frozen=True):
    """One part of a content; exactly one of the data fields is set."""

    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None


class Content(_Wire, frozen=True):
    """A turn: `user` or `model`, and its parts (no role in `systemInstruction`)."""

    parts: list[Part] = []
    role: str | None = None


class FunctionDeclaration(_Wire, frozen=True):
    """A function the model may call; `parameters` is an OpenAPI-subset schema."""

    name: str
    description: str | None = None
    parameters: msgspec.Raw | None = None


class Tool(_Wire, frozen=True):
    """A tool entry: a list of function declarations."""

    function_declarations: list[FunctionDeclaration]


class FunctionCallingConfig(_Wire, frozen=True):
    """`mode` AUTO / ANY / NONE, optionally restricted to some function names."""

    mode: str
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire, frozen=True):
    """`toolConfig` of a request."""

    function_calling_config: FunctionCallingConfig


class ThinkingConfig(_Wire, frozen=True):
    """`thinkingConfig`: a token budget, and whether thought summaries come back."""

    thinking_budget: int
    include_thoughts: bool


class GenerationConfig(_Wire, frozen=True):
    """`generationConfig` of a request."""

    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    candidate_count: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_json_schema: msgspec.Raw | None = None
    thinking_config: ThinkingConfig | None = None


class GenerateContentRequest(_Wire, frozen=True):
    """The body of `models/{model}:generateContent` and `:streamGenerateContent`."""

    contents: list[Content]
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None


class EmbedContentRequest(_Wire, frozen=True):
    """One request of a `batchEmbedContents` call."""

    model: str
    content: Content
    output_dimensionality: int | None = None


class BatchEmbedContentsRequest(_Wire, frozen=True):
    """The body of `models/{model}:batchEmbedContents`."""

    requests: list[EmbedContentRequest]


class ContentEmbedding(_Wire, frozen=True):
    """One embedding vector."""

    values: list[float] = []


class BatchEmbedContentsResponse(_Wire, frozen=True):
    """The answer of `batchEmbedContents`, one embedding per request, in order."""

    embeddings: list[ContentEmbedding] = []


class _ErrorDetailItem(_Wire, frozen=True):
    type: str | None = msgspec.field(default=None, name="@type")
    retry_delay: str | None = None


class GoogleError(_Wire, frozen=True):
    """`error` of a Google API error body (`google.rpc.Status` as JSON)."""

    code: int | None = None
    message: str | None = None
    status: str | None = None
    details: list[_ErrorDetailItem] = []


class ErrorEnvelope(_Wire, frozen=True):
    """`{"error": {...}}`."""

    error: GoogleError | None = None


class Candidate(_Wire, frozen=True):
    """One generated candidate."""

    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0


class PromptFeedback(_Wire, frozen=True):
    """Why the prompt itself was blocked, if it was."""

    block_reason: str | None = None


class UsageMetadata(_Wire, frozen=True):
    """Token counts; `promptTokenCount` already includes the cached tokens."""

    prompt_token_count: int = 0
    candidates_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0
    total_token_count: int = 0


class GenerateContentResponse(_Wire, frozen=True):
    """One answer, or one stream chunk (each SSE `data:` is a whole response object)."""

    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: GoogleError | None = None


_encoder = msgspec.json.Encoder()
_response_decoder = msgspec.json.Decoder(GenerateContentResponse)
_embeddings_decoder = msgspec.json.Decoder(BatchEmbedContentsResponse)
_error_decoder = msgspec.json.Decoder(ErrorEnvelope)

encode = _encoder.encode
"""Encode a Gemini request Struct to JSON bytes."""
decode_response = _response_decoder.decode
"""Decode a `GenerateContentResponse` (raises `msgspec.DecodeError`/`ValidationError`)."""
decode_embeddings = _embeddings_decoder.decode
"""Decode a `BatchEmbedContentsResponse`."""
decode_error = _error_decoder.decode
"""Decode a Google error body."""
