"""`FINGERPRINT`: a hash of the compiler's source, part of every key of compiled code it makes.

Programs cached on disk by an older compiler (the same version number, other code) are never
taken for this one's, nor are kernel objects cached by their structural key (codegen/kernels.py).
"""
import hashlib
import pathlib


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


FINGERPRINT = _fingerprint()
