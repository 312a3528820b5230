"""Graph -> Graph passes, one module each: shapes, broadcast, autodiff, simplify, fuse, schedule."""
