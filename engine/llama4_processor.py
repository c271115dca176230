"""Llama 4's image processor on transformers' PIL backend, for machines without
torchvision.

transformers ships Llama 4's image processor only on its torchvision backend, and
CPU torchvision is not always installable. This is the same algorithm with PIL and
NumPy (engine/image_plan.py): pick the canvas of up to `max_patches` 336 px tiles
that needs the least scaling, resize without distortion, pad right/bottom,
normalise, cut into tiles (row-major), and add a global tile when there is more
than one. Output shapes and aspect ratios equal the torchvision processor's; pixel
values differ only by resampling rounding (PIL vs torchvision bilinear).

Imported only by the transformers backend and the HF fixture (it imports
transformers at the top). `register()` makes AutoProcessor fall back to it when
torchvision is missing.
"""

from __future__ import annotations

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling, SizeDict
from transformers.processing_utils import ImagesKwargs

from engine.image_plan import best_canvas, fit_size, no_upscale, supported_canvases


class Llama4TileKwargs(ImagesKwargs, total=False):
    max_patches: int
    resize_to_max_canvas: bool


class Llama4ImageProcessorPil(PilBackend):
    # Class-level defaults, as transformers' own processors declare them.
    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]  # noqa: RUF012
    image_std = [0.5, 0.5, 0.5]  # noqa: RUF012
    size = {"height": 336, "width": 336}  # noqa: RUF012
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    max_patches = 16
    resize_to_max_canvas = False
    valid_kwargs = Llama4TileKwargs
    model_input_names = ["pixel_values"]  # noqa: RUF012

    def _preprocess(
        self,
        images: list[np.ndarray],
        size: SizeDict,
        resample,
        rescale_factor: float,
        image_mean,
        image_std,
        max_patches: int,
        resize_to_max_canvas: bool,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        tile = size.height
        if tile != size.width:
            raise ValueError("Llama 4 tiles are square: size height and width must match")
        canvases = supported_canvases(max_patches, tile)
        tiles, ratios = [], []
        for image in images:
            height, width = image.shape[-2:]
            canvas = best_canvas((height, width), canvases, resize_to_max_canvas)
            limit = canvas if resize_to_max_canvas else no_upscale(canvas, (height, width), tile)
            fitted = self.resize(image, SizeDict(*fit_size((height, width), limit)), resample=resample)
            padded = self.pad([fitted], pad_size=SizeDict(*canvas))[0]
            rows, cols = canvas[0] // tile, canvas[1] // tile
            image_tiles = _split(self._normalise(padded, rescale_factor, image_mean, image_std), rows, cols)
            if rows * cols > 1:
                overview = self.resize(image, SizeDict(tile, tile), resample=resample)
                image_tiles.append(self._normalise(overview, rescale_factor, image_mean, image_std))
            tiles.extend(image_tiles)
            ratios.append([rows, cols])
        data = {"pixel_values": np.stack(tiles), "aspect_ratios": np.array(ratios, dtype=np.int64)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _normalise(self, image: np.ndarray, rescale_factor: float, mean, std) -> np.ndarray:
        image = self.rescale(image.astype(np.float32), rescale_factor)
        return self.normalize(image, mean, std).astype(np.float32)


def _split(image: np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    channels, height, width = image.shape
    grid = image.reshape(channels, rows, height // rows, cols, width // cols)
    return list(grid.transpose(1, 3, 0, 2, 4).reshape(rows * cols, channels, height // rows, width // cols))


def register() -> None:
    """Let AutoProcessor fall back to this class where torchvision is missing; where it
    is installed, transformers' own processor stays in charge."""
    from transformers import Llama4Config
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        return
    # The mapping names the torchvision class too, so checkpoints that ask for
    # "Llama4ImageProcessor" find this entry and fall back to its PIL class.
    IMAGE_PROCESSOR_MAPPING.register(
        Llama4Config,
        {"torchvision": "Llama4ImageProcessor", "pil": Llama4ImageProcessorPil},
        exist_ok=True,
    )
