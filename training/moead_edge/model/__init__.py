from .config import ConfigError, ModelConfig, load_config
from .moead import MoEAD, count_parameters, distance_map, residual_weights

__all__ = ["ConfigError", "ModelConfig", "load_config", "MoEAD", "count_parameters", "distance_map", "residual_weights"]
