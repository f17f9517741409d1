"""What the vision configs share about image sizes: `image_size` as (height, width) and the grid of tokens it
gives."""


class ImageSizeMixin:
    """For a config with `image_size` (an int or (height, width)) and a `token_stride` (pixels per token side)."""

    image_size: int | list[int] | tuple[int, int]
    token_stride: int

    @property
    def image_height_width(self) -> tuple[int, int]:
        """`image_size` as (height, width)."""
        if isinstance(self.image_size, int):
            return self.image_size, self.image_size
        return tuple(self.image_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """(rows, cols) of the token grid at `image_size` (the position-embedding grid of ViT, the patch grid that
        `bool_masked_pos` covers)."""
        height, width = self.image_height_width
        return height // self.token_stride, width // self.token_stride
