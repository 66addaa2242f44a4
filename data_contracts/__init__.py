

import warnings as _warnings

# pandera imports pyspark.pandas when pyspark (the optional [spark] extra) is installed, which warns about
# pandas 3 on every start; the project never uses pyspark.pandas.
_warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
