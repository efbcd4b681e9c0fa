"""What every image-format module provides, and the facts it reports about a file."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageInfo:
    """Shape and kind of an image file, read from its header alone.

    Attributes:
        path: the file.
        format: ``"spider"``, ``"mrc"`` or ``"hdf"``.
        shape: shape of one image or volume in numpy order, ``(ny, nx)`` or ``(nz, ny, nx)``.
        n_images: number of images in a stack (highest member number for a SPIDER stack);
            1 for a single image or volume.
        is_stack: True when the file is a stack (even a stack of one).
        apix: pixel size in Å, or None when the file does not record one.
        is_fourier: True for SPIDER Fourier-format files (complex half-spectrum data).
        extra: format-specific header facts (e.g. SPIDER header words by name).
    """

    path: str
    format: str
    shape: tuple[int, ...]
    n_images: int = 1
    is_stack: bool = False
    apix: float | None = None
    is_fourier: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def ndim(self) -> int:
        """2 for images, 3 for volumes."""
        return len(self.shape)


def read_raw(path, kind: str) -> bytes:
    """The bytes of a metadata file, with one clear error when it cannot be read.

    Args:
        path: the file.
        kind: what the file should be, for the message (e.g. ``"STAR file"``).

    Raises:
        DataFormatError: missing file, a folder, or an OS-level read error.
    """
    from pathlib import Path

    from emsh.errors import DataFormatError

    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(p, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(p, f"is a folder, not a {kind}") from None
    except OSError as err:
        raise DataFormatError(p, f"cannot be read: {err.strerror}") from None
