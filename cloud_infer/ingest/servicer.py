"""grpc.aio adapter of the Ingest service: auth metadata, raw-bytes parsing, status codes.

The Stream method is registered without a request deserializer, so this module parses each
AgentMessage itself and answers malformed bytes with INVALID_ARGUMENT and a message naming the
problem, where grpc's own deserializer would end the call with a vague INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from cloud_infer.auth import bearer_token, verify_token
from cloud_infer.errors import (
    AuthError,
    BackendUnavailableError,
    CloudInferError,
    InvalidMessageError,
    MessageTooLargeError,
    PermissionDeniedError,
)
from cloud_infer.ingest.protocol import ack, parse_agent_message, welcome
from cloud_infer.ingest.service import IngestService
from protos.shadowdesk.v1 import ingest_pb2 as pb

SERVICE_NAME = "shadowdesk.v1.Ingest"

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[bytes, pb.CloudMessage]


def status_code_for(error: CloudInferError) -> grpc.StatusCode:
    """The gRPC status an agent sees for each error; UNAVAILABLE is the one it retries."""
    if isinstance(error, PermissionDeniedError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, AuthError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(error, MessageTooLargeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, BackendUnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, InvalidMessageError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


class IngestServicer:
    def __init__(self, service: IngestService, token_secret: str) -> None:
        self._service = service
        self._token_secret = token_secret

    def rpc_handler(self) -> grpc.GenericRpcHandler[bytes, pb.CloudMessage]:
        stream = grpc.stream_stream_rpc_method_handler(
            self.stream,
            request_deserializer=None,
            response_serializer=pb.CloudMessage.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Stream": stream})

    async def stream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[pb.CloudMessage]:
        try:
            # Read Hello before judging the token: answering before the agent's first write is consumed
            # races that write, and grpc's asyncio client then reports INTERNAL instead of our status
            # (grpc/grpc#36066).
            first = await anext(aiter(requests), None)
            metadata = dict(context.invocation_metadata() or ())
            authorization = metadata.get("authorization")
            token = bearer_token(authorization if isinstance(authorization, str) else None)
            claims = verify_token(self._token_secret, token, "ingest")
            if first is None:
                raise InvalidMessageError("the stream ended before Hello")
            hello = parse_agent_message(first)
            if hello.WhichOneof("body") != "hello":
                raise InvalidMessageError("the first message of a stream must be Hello")
            async with self._service.open_session(claims, hello.hello) as session:
                acked = await session.acked_seq()
                logger.info(
                    "session %s opened by %s; resuming after seq %d",
                    session.session_id,
                    context.peer(),
                    acked,
                )
                yield welcome(acked, self._service.limits)
                async for raw in requests:
                    message = parse_agent_message(raw)
                    if message.WhichOneof("body") != "batch":
                        raise InvalidMessageError("Hello may be sent only once per stream")
                    yield ack(await session.ingest(message.batch))
        except CloudInferError as exc:
            code = status_code_for(exc)
            self._service.metrics.rejected.add(1, {"reason": code.name.lower()})
            logger.info("ingest stream from %s ended: %s %s", context.peer(), code.name, exc)
            await context.abort(code, str(exc))
