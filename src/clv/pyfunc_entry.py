"""Entry file for MLflow's "models from code": MLflow runs this file to get the model object.

MLflow executes it under a module name of its own and reads the model that
:func:`mlflow.models.set_model` registers. Imported as ``clv.pyfunc_entry`` (e.g. by a test
collecting the package's doctests) it does nothing.
"""

if __name__ != "clv.pyfunc_entry":
    import mlflow

    from clv.pyfunc import ClvModel

    mlflow.models.set_model(ClvModel())
