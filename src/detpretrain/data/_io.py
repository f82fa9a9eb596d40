"""Shared helpers of the standard-format readers: image decoding, split files, XML, box validation.

Every function here turns a problem with the input into a :class:`~detpretrain.errors.DataError` that names the
offending file (bad-input policy of data/README.md: raise on the first bad item, never drop it silently).

Image decoding uses ``torchvision.io.decode_image`` (libjpeg-turbo / libpng) with ``ImageReadMode.RGB``, which
converts grayscale, palette, RGBA and CMYK/YCCK JPEGs to 3-channel RGB and fails on truncated files
("Image is incomplete or truncated") and on bytes that are no image at all. One limit, stated so nobody relies on
it: garbage *inside* a JPEG's entropy-coded data that libjpeg can decode past (it only prints "Corrupt JPEG data")
yields a damaged picture and no error; no decoder detects that reliably.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image as _tv_decode_image

from detpretrain.errors import DataError

#: Tolerance (pixels) for boxes that reach past the image border: real annotations are rounded to whole pixels
#: (VOC's 1-based corners, COCO's float boxes), so a corner up to this far outside the image is clamped onto the
#: border; anything further is an error.
BOX_TOLERANCE_PX = 1.0


def require_dir(path: str | os.PathLike, what: str = "data root") -> Path:
    """``Path(path)`` if it is an existing directory.

    Raises:
        DataError: ``<path>: <what> does not exist`` (or is not a directory).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(p, f"{what} does not exist")
    if not p.is_dir():
        raise DataError(p, f"{what} is not a directory")
    return p


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``Path(path)`` if it is an existing file; otherwise DataError ``<path>: <what> is missing``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, f"{what} is missing")
    return p


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Image names of a split list (VOC ``ImageSets/*/<set>.txt``, Pet ``annotations/<set>.txt``).

    Each non-empty line contributes its first whitespace-separated token; lines starting with ``#`` are comments.

    Raises:
        DataError: the file is missing, unreadable, lists no image, or lists one name twice.
    """
    p = require_file(path, "split file")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(p, f"cannot read split file ({err})") from err
    names = [ln.split()[0] for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise DataError(p, "split file lists no image")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DataError(p, f"split file lists {n!r} twice")
        seen.add(n)
    return names


def parse_xml(path: str | os.PathLike) -> ET.Element:
    """The root element of an XML file; DataError naming the file if it is missing or cannot be parsed."""
    p = require_file(path, "annotation file")
    try:
        return ET.parse(p).getroot()
    except ET.ParseError as err:
        raise DataError(p, f"XML cannot be parsed ({err})") from err


def decode_image(path: str | os.PathLike) -> tv_tensors.Image:
    """Decode an image file to RGB.

    Args:
        path: JPEG / PNG / GIF / WEBP file.

    Returns:
        ``tv_tensors.Image`` uint8 ``[3, H, W]`` (grayscale and CMYK JPEGs converted to RGB; EXIF orientation is
        *not* applied, so pixels match the stored annotation coordinates).

    Raises:
        DataError: the file is missing, truncated, or not a decodable image.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise DataError(p, f"cannot read image ({err.strerror or err})") from err
    if not data:
        raise DataError(p, "image file is empty")
    try:
        img = _tv_decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as err:
        # torchvision cannot decode a few legal formats (e.g. some BMP/TIFF); PIL decides whether the file is bad.
        img = _decode_with_pil(p, err)
    if img.ndim != 3 or img.shape[0] != 3 or img.dtype != torch.uint8:
        raise DataError(p, f"decoded to an unexpected tensor {tuple(img.shape)} {img.dtype}")
    return tv_tensors.Image(img)


def _decode_with_pil(p: Path, tv_error: Exception) -> torch.Tensor:
    msg = str(tv_error).split("\n")[0]
    if "truncated" in msg or "incomplete" in msg:
        raise DataError(p, f"corrupt or truncated image ({msg})") from tv_error
    try:
        with Image.open(p) as im:
            im.load()  # PIL's ImageFile.LOAD_TRUNCATED_IMAGES is False by default: truncation raises OSError
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(p, f"corrupt or unreadable image ({msg})") from err
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def image_header_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` in pixels read from the image header only (no decoding); DataError if it is unreadable."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(p, f"cannot read image header ({err})") from err
    return int(h), int(w)


def read_index_png(path: str | os.PathLike) -> np.ndarray:
    """The index values of a palette (or 8-bit grayscale) PNG label map — NOT its RGB colours.

    VOC ``SegmentationClass`` / ``SegmentationObject`` PNGs store class (or instance) indices with a colour palette;
    255 marks the void border. Used by the segmentation reader and by later chapters (mIoU, trimap bands).

    Returns:
        ``np.ndarray`` uint8 ``[H, W]``.

    Raises:
        DataError: missing/unreadable file, or an RGB/16-bit image (whose colours would have to be mapped back).
    """
    p = require_file(path, "label PNG")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode not in ("P", "L"):
                raise DataError(p, f"expected a palette ('P') or 8-bit ('L') index PNG, got mode {im.mode!r}")
            arr = np.array(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(p, f"corrupt or unreadable label PNG ({err})") from err
    return arr


def check_image_size(path: Path, decoded_hw: tuple[int, int], annotated_hw: tuple[int, int]) -> None:
    """DataError if the decoded image size differs from the size the annotation states (boxes would be wrong)."""
    if tuple(decoded_hw) != tuple(annotated_hw):
        raise DataError(
            path, f"image is {decoded_hw[0]}x{decoded_hw[1]} (HxW) but its annotation says "
            f"{annotated_hw[0]}x{annotated_hw[1]}")


def validate_box(box: Sequence[float], height: int, width: int, path: str | os.PathLike, what: str,
                 tol: float = BOX_TOLERANCE_PX, allow_empty: bool = False) -> list[float]:
    """Check one XYXY pixel box against its image and clamp it onto the canvas.

    Args:
        box: ``[x1, y1, x2, y2]`` in pixels (continuous coordinates, origin at the image's top-left corner).
        height, width: image size in pixels.
        path: the annotation file, for the error message.
        what: which object (e.g. ``"object 3 ('dog')"``), for the error message.
        tol: how far (pixels) a corner may lie outside the image before it is an error.
        allow_empty: return a box with ``x2 <= x1`` or ``y2 <= y1`` instead of raising (the caller drops it).

    Returns:
        The box clamped to ``[0, W] x [0, H]``.

    Raises:
        DataError: non-finite coordinates, ``x2 <= x1`` or ``y2 <= y1``, or a corner more than ``tol`` outside.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise DataError(path, f"{what}: box {box} has a non-finite coordinate")
    if (x2 <= x1 or y2 <= y1) and not allow_empty:
        raise DataError(path, f"{what}: empty box {_fmt(box)} (needs x2 > x1 and y2 > y1)")
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise DataError(path, f"{what}: box {_fmt(box)} (x1,y1,x2,y2) lies outside the {width}x{height} (WxH) image "
                              f"by more than {tol:g} px")
    return [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]


def _fmt(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"


def image_id_from_name(names: Sequence[str]) -> list[int]:
    """Integer image ids for image names: the digits of each name (VOC ``000342`` -> 342, ``2007_001763`` ->
    2007001763, as in Detectron's COCO-format VOC json); 1-based positions if some name has no digits or two
    names would share an id."""
    ids: list[int] = []
    for n in names:
        digits = "".join(ch for ch in n if ch.isdigit())
        if not digits:
            return list(range(1, len(names) + 1))
        ids.append(int(digits))
    if len(set(ids)) != len(ids):
        return list(range(1, len(names) + 1))
    return ids


class DetectionDatasetBase(torch.utils.data.Dataset):
    """Shared ``__getitem__`` of the detection readers (VOC, COCO).

    Subclasses provide ``image_path(i)``, ``image_size(i)`` (H, W from the annotation), ``load_target(i)``,
    ``load_masks(i)``, ``with_masks`` and ``transforms``.
    """

    def __getitem__(self, i: int):
        """``(image, target)``: ``tv_tensors.Image`` uint8 [3, H, W] RGB and the target dict, after ``transforms``.

        Raises:
            DataError: the image is corrupt, truncated or its size differs from the annotation's.
        """
        path = self.image_path(i)
        image = decode_image(path)
        check_image_size(path, tuple(image.shape[-2:]), self.image_size(i))
        target = self.load_target(i)
        if self.with_masks:
            target["masks"] = self.load_masks(i)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
