"""The application's error family: services raise these, one handler turns them into HTTP."""


class AppError(Exception):
    """An error with a message for the caller and the HTTP status it maps to."""

    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequestError(AppError):
    """The request is well-formed but cannot be served as asked."""

    status_code = 422


class NotFoundError(AppError):
    """The thing asked for does not exist."""

    status_code = 404


class ConflictError(AppError):
    """The request conflicts with the current state (for example a case already claimed)."""

    status_code = 409


class UnavailableError(AppError):
    """A dependency (database, batcher) cannot take the request now; the caller should retry."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SchemaMissingError(UnavailableError):
    """The database answers but was never migrated: the service's tables are not there."""

    def __init__(self, where: str) -> None:
        # NOTE: an HTTP caller is told what is wrong; where the database is, only the operator.
        super().__init__("the database has no schema: run `triage db upgrade` first", 30)
        self.where = where

    def __str__(self) -> str:
        return f"the database at {self.where} has no schema: run `triage db upgrade` first"


class UnauthorizedError(AppError):
    """No valid API key came with the request."""

    status_code = 401


class ForbiddenError(AppError):
    """The key is valid but its role may not do this."""

    status_code = 403


class UnsupportedMediaTypeError(AppError):
    """The body is not in a format the route reads."""

    status_code = 415
