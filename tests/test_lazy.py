"""Lazy modules import their target on first attribute use, not before."""

import subprocess
import sys


def test_the_target_is_imported_by_the_first_attribute_read_only():
    code = (
        "import sys\n"
        "from tfvae._lazy import LazyModule\n"
        "json_module = LazyModule('json', 'decoder')\n"
        "assert 'json.decoder' not in sys.modules\n"
        "assert json_module.JSONDecodeError.__name__ == 'JSONDecodeError'\n"
        "assert 'json.decoder' in sys.modules\n"
        "from tfvae._lazy import tf\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
