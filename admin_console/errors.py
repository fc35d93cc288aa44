"""Errors raised by the admin console.

ConsoleError              base of everything below
├── SignInError           unknown user or wrong password (401; which of the two is not said)
├── NotSignedInError      no valid session cookie (401 for the API, a redirect to /login for pages)
├── ForbiddenRequestError a state-changing request that is not JSON or comes from another origin (403)
└── CloudError            the cloud's API failed or missed its deadline (502)

An answer of the cloud (a 403 for a role too weak, a 404) is passed to the browser as it came, not raised.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class for admin console errors."""

    status = 500


class SignInError(ConsoleError):
    status = 401


class NotSignedInError(ConsoleError):
    status = 401


class ForbiddenRequestError(ConsoleError):
    status = 403


class CloudError(ConsoleError):
    status = 502
