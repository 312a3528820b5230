"""Graph -> Graph passes, one module each: shapes, broadcast, simplify, fuse, schedule; and autodiff,
the VJP library the frontend builds gradient nodes with (not a pipeline stage)."""
