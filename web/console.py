"""Signing in to a console with an API key: the merchant console (``/merchant``) and the auditor explorer
(``/audit``) share it.

The session is the API key in a cookie that only the console's own paths receive (``Path=/merchant`` or
``/audit``, so one console never sees the other's key), HttpOnly, ``SameSite=Strict`` and ``Secure`` when the
page came over https. Every request checks the key again (a revoked key ends the session at once). A key of
another role, a wrong or revoked key: the console's sign-in page with the reason, in the page's language.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from api.deps import services_of
from ledger_service.access import Actor, Role, verify_api_key
from ledger_service.errors import LedgerError, PermissionDeniedError
from web.forms import page_form
from web.i18n import Sentence
from web.render import error_sentence, page, redirect, secure, translator


@dataclass(frozen=True)
class KeyConsole:
    """One console: the roles it admits, its cookie and path, and its sign-in page."""

    roles: tuple[Role, ...]
    cookie: str
    path: str
    signin_template: str
    refusal: str
    """The sentence refusing a key of another role, with a ``{role}`` placeholder (a catalog text)."""

    def actor(self, request: Request, key: str) -> Actor:
        """The holder of ``key``; :class:`PermissionDeniedError` for a key of a role this console refuses."""
        actor = verify_api_key(store=services_of(request).store, presented=key)
        if actor.role not in self.roles:
            raise PermissionDeniedError(self.refusal.format(role=actor.role.value))
        return actor

    def sign_in_page(self, request: Request, *, status: int = 200, error: Sentence | None = None) -> Response:
        response = page(request, self.signin_template, status=status, error=error, action=f"{self.path}/signin")
        if error is not None:
            response.delete_cookie(self.cookie, path=self.path)
        return response

    def session(self, request: Request) -> tuple[Actor, str] | Response:
        """The signed-in actor and its key, or the sign-in page (with the reason when the key stopped working)."""
        key = request.cookies.get(self.cookie)
        if not key:
            return self.sign_in_page(request)
        try:
            return self.actor(request, key), key
        except LedgerError as exc:
            status, sentence = error_sentence(request, exc)
            return self.sign_in_page(request, status=status, error=sentence)

    async def sign_in(self, request: Request) -> Response:
        """The sign-in form's post: the session cookie and back to the console, or the form with the reason."""
        form = await page_form(request)
        key = str(form.get("api_key") or "").strip()
        if not key:
            return self.sign_in_page(request, status=422, error=translator(request).sentence("Type your API key."))
        try:
            await anyio.to_thread.run_sync(self.actor, request, key)
        except LedgerError as exc:
            status, sentence = error_sentence(request, exc)
            return self.sign_in_page(request, status=status, error=sentence)
        response = redirect(self.path)
        response.set_cookie(self.cookie, key, httponly=True, samesite="strict", secure=secure(request), path=self.path)
        return response

    def sign_out(self) -> Response:
        response = redirect(self.path)
        response.delete_cookie(self.cookie, path=self.path)
        return response

    def add_routes(self, router: APIRouter) -> None:
        """``POST signin`` and ``POST signout`` on the console's ``router`` (whose prefix is its path)."""
        router.add_api_route("/signin", self.sign_in, methods=["POST"])
        router.add_api_route("/signout", self.sign_out, methods=["POST"])
