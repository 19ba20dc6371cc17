"""splat.viewer: the web viewer (viser) for scenes and training runs.

    splat view scene.ply            # ViewerServer (server.py)
    splat train ... --viewer        # TrainingViewer (training.py), a TrainingObserver

Modules: camera (viser <-> viewmat/K conventions), render (server-side render function,
adaptive resolution, latest-wins scheduling), server (ViewerServer and GUI), training
(TrainingViewer), path (camera paths for `splat render --path`). See docs/viewer.md.
viser is imported only when a server starts.
"""

from splat.viewer.path import load_camera_path

__all__ = ["load_camera_path", "ViewerServer", "TrainingViewer"]


def __getattr__(name: str):
    if name == "ViewerServer":
        from splat.viewer.server import ViewerServer

        return ViewerServer
    if name == "TrainingViewer":
        from splat.viewer.training import TrainingViewer

        return TrainingViewer
    raise AttributeError(name)
