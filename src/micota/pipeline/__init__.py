"""The whole MiCoTA DAG from one recipe: ``micota run RECIPE``."""
