"""Ships ``sss_nnunet_ext_trainers.pth`` into site-packages (regular and editable installs).

The .pth imports ``sss_nnunet._ext_trainer_hook`` at interpreter start, which appends our
trainer shim folder to ``nnUNet_extTrainer`` so stock nnU-Net commands find SSSTrainer.
Everything else is in pyproject.toml.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "sss_nnunet_ext_trainers.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithPth(build_py):
    """Regular wheels: put the .pth at the wheel root (installed into site-packages)."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


class _WithPth:
    """Wraps setuptools' editable strategy and writes the .pth into the editable wheel too."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, wheel, files, mapping):
        self.inner(wheel, files, mapping)
        with open(os.path.join(HERE, PTH), "rb") as f:
            wheel.writestr(PTH, f.read())

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)


class EditableWheelWithPth(editable_wheel):
    def _select_strategy(self, name, tag, build_lib):
        return _WithPth(super()._select_strategy(name, tag, build_lib))


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
