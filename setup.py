from setuptools import find_packages, setup

setup(
    name="ppir",
    version="0.1.0",
    description="Faithful PaddlePaddle reproductions of MIRNetV2, MIMO-UNet, CTSDG, MISF and ICT",
    packages=find_packages(include=["ppir", "ppir.*"]),
    python_requires=">=3.9",
    # The pinned versions live in requirements.txt; these are the import-time needs.
    install_requires=["numpy", "scikit-image", "scipy", "opencv-python-headless", "pillow",
                      "pyyaml", "visualdl", "tqdm", "psutil"],
    extras_require={
        "convert": ["torch"],  # only to read legacy (non-zip) .pth files
        "demo": ["gradio>=6,<7"],  # deploy/serve.py, the web page (docs/demo.md); its ImageEditor API is 6.x's
        "browser-test": ["selenium>=4"],  # tests/test_serve.py drives Debian's chromium + chromium-driver
    },
)
