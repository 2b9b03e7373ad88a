"""Map the top-level rules/ and playbooks/ folders into the package as data.

The rule and playbook files live at the repository root, where engineers edit
them; installed, they are the packages `doctor._rules` and `doctor._playbooks`.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["doctor", "doctor.*"]) + ["doctor._rules", "doctor._playbooks"],
    package_dir={"doctor._rules": "rules", "doctor._playbooks": "playbooks"},
)
