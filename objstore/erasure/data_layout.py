"""How an object's bytes are laid out, written as one policy string: ``replica:N`` or
``ec:K+M;stripe=B`` (a version record), ``ec:K+M;stripe=B;size=S`` (a shard blob's header).

Pure. The string goes where a plain policy went before (a version record's ``policy``, a
blob header's policy field), so records and blobs written before erasure coding read as
they are, and every shard blob says on its own which stripe layout it belongs to and how
big the object is (its shard index is the header's ``shard`` field).

Invariants:
- ``str(DataLayout.parse(text)) == text`` for every string ``str`` produced.
- An ``ec`` policy without ``stripe=`` means ``DEFAULT_STRIPE_SIZE`` (the bucket policy
  a multipart upload records is such a string; its parts are written with the default).
- Parsing never accepts a field twice or an unknown field (InvalidArgument).
"""
from __future__ import annotations

from dataclasses import dataclass

from objstore.erasure.layout import StripeLayout
from objstore.errors import InvalidArgument
from objstore.types import Policy

DEFAULT_STRIPE_SIZE = 1024 * 1024  # ops.bench_erasure: zfec's throughput levels off above 1 MiB
_FIELDS = ("stripe", "size")


@dataclass(frozen=True, slots=True)
class DataLayout:
    """A data policy with what a reader needs beyond it: the stripe size (ec only) and,
    in a shard blob's header, the object's size (``object_size``, -1 when not given)."""

    policy: Policy
    stripe_size: int = 0
    object_size: int = -1

    @classmethod
    def parse(cls, text: str) -> "DataLayout":
        """Raises InvalidArgument for anything but the grammar in the module docstring."""
        head, *rest = text.split(";")
        policy = Policy.parse(head)
        values: dict[str, int] = {}
        for item in rest:
            name, _, value = item.partition("=")
            if name not in _FIELDS or name in values or not (value.isascii() and value.isdigit()) \
                    or len(value) > 19:
                raise InvalidArgument(f"Invalid data layout {text!r}")
            values[name] = int(value)
        stripe = values.get("stripe", DEFAULT_STRIPE_SIZE if policy.kind == "ec" else 0)
        if (policy.kind == "ec") != (stripe > 0):
            raise InvalidArgument(f"Invalid data layout {text!r}: a stripe size goes with ec policies only")
        return cls(policy, stripe, values.get("size", -1))

    @classmethod
    def for_policy(cls, policy: Policy, stripe_size: int = DEFAULT_STRIPE_SIZE) -> "DataLayout":
        """The layout a new blob of ``policy`` gets (a stripe size for ec only)."""
        return cls(policy, stripe_size if policy.kind == "ec" else 0)

    @property
    def erasure_coded(self) -> bool:
        return self.policy.kind == "ec"

    @property
    def stripes(self) -> StripeLayout:
        """The stripe arithmetic (ec layouts only; ValueError otherwise)."""
        if not self.erasure_coded:
            raise ValueError(f"{self.policy} has no stripes")
        return StripeLayout(self.policy.k, self.policy.m, self.stripe_size)

    def with_size(self, object_size: int) -> "DataLayout":
        """This layout as a shard blob's header states it."""
        return DataLayout(self.policy, self.stripe_size, object_size)

    def __str__(self) -> str:
        text = str(self.policy)
        if self.erasure_coded:
            text += f";stripe={self.stripe_size}"
        if self.object_size >= 0:
            text += f";size={self.object_size}"
        return text
