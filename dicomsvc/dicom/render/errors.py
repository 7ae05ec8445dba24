"""Renderer exceptions. Messages are safe to return to clients: never patient data."""


class RenderError(ValueError):
    """The instance's image cannot be decoded or rendered (or a render argument is invalid)."""


class NoPixelData(RenderError):
    """The instance holds no image (SR, RT plan, presentation state, encapsulated PDF...)."""


class PixelLimitExceeded(RenderError):
    """The header claims more pixels than the configured cap; nothing was decoded."""
