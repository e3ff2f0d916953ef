"""Image files to 8-bit pixel arrays: which files are images, and one decoder for all of them.

TensorFlow's ``decode_image`` reads PNG, JPEG, GIF, BMP and WebP (a 16-bit
PNG scaled down to 8 bits). TIFF, which microscopes, scanners and
remote-sensing pipelines write, and the Netpbm formats it does not read go
through Pillow (installed with matplotlib): 1-, 8- and 16-bit grey, RGB and
RGBA, palette and CMYK, the first page of a multi-page file; a 16-bit image
is scaled to 8 bits by its depth, as a 16-bit PNG is. A 32-bit integer or
float TIFF has no depth to scale by and is refused (the reading leaves such
a file out and says why). ``UNREAD_SUFFIXES`` are image kinds neither reads
(HEIC from phones, camera raw files, ...): a folder's reading counts them
rather than pass over them in silence.
"""

from __future__ import annotations

import io
import re

import numpy as np

TF_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
PIL_SUFFIXES = (".tif", ".tiff", ".ppm", ".pgm", ".pbm")
IMAGE_SUFFIXES = TF_SUFFIXES + PIL_SUFFIXES
UNREAD_SUFFIXES = (".heic", ".heif", ".avif", ".jxl", ".jp2", ".dng", ".cr2", ".nef", ".arw", ".raw", ".psd", ".svg")


def decode(content: bytes) -> np.ndarray:
    """``content`` (an image file's bytes) as uint8 pixels (H, W, C); raises ``ValueError`` saying why it cannot."""
    if not content.startswith((b"II*\x00", b"MM\x00*", b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")):
        import tensorflow as tf

        try:
            return tf.io.decode_image(content, channels=0, expand_animations=False).numpy()
        except tf.errors.OpError as exc:  # its words, without the kernel's name and the op's ("{{function_node ...}}")
            raise ValueError(re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", exc.message).strip()) from None
    return _with_pillow(content)


def _with_pillow(content: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(content)) as img:
        img.seek(0)  # a multi-page TIFF: its first page
        mode = img.mode
        if mode.startswith("I;16"):
            wide = np.asarray(img, dtype=np.uint32)
            return ((wide * 255 + 32767) // 65535).astype(np.uint8)[..., None]
        if mode in ("I", "F"):
            raise ValueError(f"a {'32-bit integer' if mode == 'I' else 'floating-point'} image has no bit depth to "
                             "scale by; give its values in an .npz instead")
        target = {"1": "L", "L": "L", "LA": "L", "P": "RGBA" if "transparency" in img.info else "RGB",
                  "RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB"}.get(mode)
        if target is None:
            raise ValueError(f"Pillow mode {mode!r} is not an image lrfc reads (grey, RGB, RGBA, 16-bit grey)")
        pixels = np.asarray(img.convert(target), dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels
