"""The end-to-end suite runs against the real stack: see tests/support/stack.py (its fixtures are
registered in tests/conftest.py, so the fault suite shares the same stack)."""
from tests.support.stack import Api, SseEvent, SseStream, Stack  # noqa: F401
