"""Stand-in for the host's FunctionRpc protobuf module, for the worker's own loader.

The worker's indexing only touches `BindingInfo` (its enum values as attributes),
`RpcFunctionMetadata` and `RpcRetryOptions`; values mirror FunctionRpc.proto
(docs/functions-facts.md section 1.6).
"""

from __future__ import annotations

from types import SimpleNamespace


class _Message(SimpleNamespace):
    pass


class BindingInfo(_Message):
    # Direction {in = 0, out = 1, inout = 2}; `in` is a keyword, set below.
    out = 1
    inout = 2
    # DataType {undefined = 0, string = 1, binary = 2, stream = 3}
    undefined = 0
    string = 1
    binary = 2
    stream = 3


setattr(BindingInfo, "in", 0)  # `in` is a Python keyword


class RpcFunctionMetadata(_Message):
    pass


class RpcRetryOptions(_Message):
    pass
