"""The daily review over HTTP: ``GET /api/units/<unit>/review`` and ``POST /api/units/<unit>/reviews``.

GET answers what a review of the unit would cover now (``reporting/review_figures.py``); POST computes
the same figures again, server side, checks the signing password (``Gatekeeper.sign``, 401/423) and
hands one ``ReviewRequest`` to the rules worker, which stores the ``Review`` (measurement ``review``),
audits it and resolves the unit's ``review_missed``. The review page (``review_page.py``) calls the
same two functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field

from coldchain.adapters.http.auth import Gatekeeper
from coldchain.adapters.http.bodies import SignatureBody
from coldchain.adapters.http.ports import RulesPort
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Settings
from coldchain.core.access import Caller
from coldchain.core.records import Review
from coldchain.core.review import ReviewFigures, ReviewRequest
from coldchain.reporting.review_figures import unit_figures


class ReviewRefused(Exception):
    """The review cannot be shown or signed: the HTTP status and the reason."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ReviewBody(BaseModel):
    """``POST /api/units/<unit>/reviews``: a note and the signer's signing password."""

    model_config = ConfigDict(extra="forbid", strict=True)
    note: str | None = Field(default=None, max_length=2000)
    signature: SignatureBody | None = None


@dataclass(eq=False)
class ReviewDesk:
    """Figures and signing of reviews, for the API and the page."""

    settings: Settings
    store: Store
    gate: Gatekeeper
    rules: Callable[[], RulesPort]
    clock: Callable[[], datetime]

    def figures(self, unit: str) -> ReviewFigures:
        """404 for an unknown unit, 503 when the store cannot be read."""
        if all(u.id != unit for u in self.settings.units):
            raise ReviewRefused(HTTPStatus.NOT_FOUND, f"unknown unit {unit!r}")
        last = self.rules().last_review(unit)
        try:
            return unit_figures(self.store, self.settings, unit, last, self.clock())
        except StoreError as exc:
            raise ReviewRefused(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read the store: {exc}") from None

    def sign(self, unit: str, user: Caller, note: str | None, password: str | None, client: str) -> Review:
        """Record ``user``'s signed review of ``unit``; ``Refusal`` 401/403/423 from the gate."""
        self.gate.authorize(user, "sign_review", "sign the daily review")
        figures = self.figures(unit)
        signer = self.gate.sign(user.name, password, client, f"review:{unit}", "sign_review")
        return self.rules().review(ReviewRequest(figures, user.name, signer, note or None))

