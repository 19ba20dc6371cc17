"""splat.datasets: cameras, images and initial points from the formats people have.

Camera convention (everything this package returns): world-to-camera
``viewmats`` [N, 4, 4] in OpenCV axes (x right, y down, z forward) and pinhole
``Ks`` [N, 3, 3] with pixel centers at +0.5 -- exactly what
`splat.rasterizer.rasterize` takes. See docs/datasets.md.

    scene = splat.datasets.load("path/to/scene", data_factor=2)
    img = scene.image(scene.train_indices[0])          # [H, W, 3] float32
    loader = DataLoader(scene.split("train"), batch_size=1, shuffle=True)
"""

from .cameras import Cameras, Intrinsics
from .loader import detect_format, load
from .normalize import Normalization
from .scene import SceneData, SplitDataset, View

__all__ = [
    "Cameras", "Intrinsics", "Normalization", "SceneData", "SplitDataset", "View",
    "detect_format", "load", "load_video", "VideoScene",
]  # fmt: skip


def __getattr__(name: str):
    # the video module pulls in decoders; import it only when asked for
    if name in ("load_video", "VideoScene"):
        from . import video

        return getattr(video, name)
    raise AttributeError(name)
