pytest_plugins = ["pytester", "tests.chromium_support"]  # the chromium fixture
