"""The integration tests' own fixtures: the journeys' shared `listgate up` (up_stack, sink) of
tests.support.shared_stack, for the modules that name SHARED_STACK."""

from tests.support.shared_stack import shared_site, shared_stacks, sink, up_stack

__all__ = ["shared_site", "shared_stacks", "sink", "up_stack"]
