"""Writes the numpy-made seeds of test/fuzz/corpus/npy and npz (run once; the files are committed).

Every array holds arange(n) in row-major order, cast to its dtype (bools: arange % 3 != 0), so
tests know the expected values without numpy. Names say dtype, order, version and byte order.
"""
import os
import numpy as np
from numpy.lib import format as npformat

here = os.path.dirname(os.path.abspath(__file__))
npy_dir = os.path.join(here, 'npy')
npz_dir = os.path.join(here, 'npz')


def values(dtype, shape):
    n = int(np.prod(shape))
    a = np.arange(n).reshape(shape)
    return (a % 3 != 0) if dtype == '?' else a.astype(dtype)


def write(name, array, version=None):
    with open(os.path.join(npy_dir, name), 'wb') as f:
        npformat.write_array(f, array, version=version, allow_pickle=False)


for code in ['<f2', '<f4', '<f8', '|i1', '<i2', '<i4', '<i8', '|u1', '<u2', '<u4', '<u8', '?']:
    tag = 'b1' if code == '?' else code[1:]
    write(f'{tag}-c-v1.npy', values(code, (2, 3)))
write('f4-be-v1.npy', values('>f4', (2, 3)))
write('i8-be-v1.npy', values('>i8', (5,)))
write('f2-be-fortran-v1.npy', np.asfortranarray(values('>f2', (2, 3, 4))))
write('f8-fortran-v1.npy', np.asfortranarray(values('<f8', (3, 4))))
write('u2-fortran-v2.npy', np.asfortranarray(values('<u2', (4, 2, 3))), version=(2, 0))
write('i4-c-v3.npy', values('<i4', (3, 2)), version=(3, 0))
write('f4-scalar-v1.npy', values('<f4', ()))
write('f4-empty-v1.npy', values('<f4', (0, 3)))

a, b = values('<f4', (2, 3)), values('<i8', (4,))
np.savez(os.path.join(npz_dir, 'stored.npz'), a=a, b=b)
np.savez_compressed(os.path.join(npz_dir, 'deflated.npz'), a=a, b=b, fortran=np.asfortranarray(values('>f8', (3, 4))))
