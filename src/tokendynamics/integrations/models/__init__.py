"""lmms-eval's plugin hook (``LMMS_EVAL_PLUGINS=tokendynamics.integrations``) reads this table: model name ->
class, found in ``tokendynamics.integrations.models.<name>``."""

AVAILABLE_MODELS = {"tokendynamics": "TokenDynamicsLMM"}
