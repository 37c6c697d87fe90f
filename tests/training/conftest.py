import pytest

from testkit.synthetic import make_frame_folder_dataset


@pytest.fixture(scope="session")
def frame_dataset(tmp_path_factory):
    """A small frame-folder dataset: 4 normal training clips, 2 test clips with a fast object."""
    return make_frame_folder_dataset(tmp_path_factory.mktemp("ds"), n_train=4, n_test=2, length=48)


TINY = [
    "model.isize=[32,48]", "model.nc=1", "model.ngf=8", "model.ndf=8", "model.nz=16",
    "model.num_frames=8", "model.stride=4", "workers=0", "threads=1", "batch_size=4",
]
