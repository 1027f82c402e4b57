"""The one error type the serving code raises: an HTTP status, a stable code and a plain message."""


class ClassifyError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def upload_too_large(cap_bytes: int) -> ClassifyError:
    return ClassifyError(413, "upload_too_large", f"uploads are limited to {cap_bytes // 2**20} MB")


def source_too_long(seconds: float, max_minutes: float) -> ClassifyError:
    return ClassifyError(422, "source_too_long",
                         f"the source lasts {seconds / 60:.0f} min; at most {max_minutes:g} min are accepted")
