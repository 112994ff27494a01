"""The one error hierarchy of qwenbuild.

    QwenbuildError                 anything qwenbuild reports to a user
    ├── InputError                 bad input: exit code 2, nothing generated, nothing written
    │   ├── CampaignError          the campaign file (syntax, types, unknown keys, references)
    │   ├── TemplateError          a prompt template (syntax, undefined variable, sandbox)
    │   ├── ValidationError        a job a provider would refuse (checked before spending)
    │   ├── UsageError             the command line
    │   ├── BudgetError            a build would spend more than allowed
    │   └── RemoteCacheError       the team cache: a bad URL, no bucket, refused credentials
    ├── ProviderError              one job failed at its provider (the build goes on)
    ├── LockError                  another build holds the output folder
    └── FileSystemError            a folder qwenbuild must write, or its manifest, cannot
                                   be used (found before any request: nothing generated,
                                   nothing written)

Foreign errors are converted at the boundary (`raise ... from exc`), so callers deal with
this hierarchy only.
"""

from __future__ import annotations

from .redact import redact


class QwenbuildError(Exception):
    """Base of every error qwenbuild reports to a user."""

    exit_code = 1


class InputError(QwenbuildError):
    """Bad input. Carries one message per problem so all of them are reported at once."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class CampaignError(InputError):
    """The campaign file is invalid."""


class TemplateError(InputError):
    """A prompt template cannot be rendered."""


class ValidationError(InputError):
    """A job breaks a rule of its provider; caught before any request is sent."""


class UsageError(InputError):
    """The command line is invalid."""


class ProviderError(QwenbuildError):
    """One job failed at its provider. `retryable` tells the retry policy what to do."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        # Provider text (an error envelope, an unreadable answer) may echo a request and
        # with it a key: every message is redacted once, here, whatever built it.
        self.message = redact(message)
        self.code = redact(code) if code else code
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(str(self.code))
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class BudgetError(InputError):
    """A build would spend more than it is allowed to; nothing was requested."""


class LockError(QwenbuildError):
    """Another qwenbuild process is building the same outputs."""

    exit_code = 2


class RemoteCacheError(InputError):
    """The team cache is configured wrongly (its URL, its bucket, its credentials);
    reported before any request to a provider, exit code 2."""


class FileSystemError(QwenbuildError):
    """The output folder or the cache folder cannot be written (read-only, no permission,
    a file in the way, a place no folder can be), or the manifest cannot be read: found
    before anything is sent."""

    exit_code = 2
