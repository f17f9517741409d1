"""Looking inside the models: ViT's attention distances, attention rollout and position-embedding similarity
(`attention`), and pictures of Swin's shifted windows, masks and relative position index (`swin`).

    from hf_visiontx.analysis import mean_attention_distance, write_analysis, write_swin_pictures
"""

from .attention import (
    attention_rollout,
    attention_rollout_map,
    collect_attentions,
    mean_attention_distance,
    mean_attention_distance_from_attentions,
    plot_attention_rollout,
    plot_mean_attention_distance,
    plot_position_embedding_similarity,
    position_embedding_similarity,
    position_embedding_similarity_from_embeddings,
    write_analysis,
)
from .swin import plot_relative_position_index, plot_shifted_windows, write_swin_model_pictures, write_swin_pictures

__all__ = [
    "attention_rollout",
    "attention_rollout_map",
    "collect_attentions",
    "mean_attention_distance",
    "mean_attention_distance_from_attentions",
    "plot_attention_rollout",
    "plot_mean_attention_distance",
    "plot_position_embedding_similarity",
    "plot_relative_position_index",
    "plot_shifted_windows",
    "position_embedding_similarity",
    "position_embedding_similarity_from_embeddings",
    "write_analysis",
    "write_swin_model_pictures",
    "write_swin_pictures",
]
