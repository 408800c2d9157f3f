"""A user's own layers, as in keras.io's "Image classification with Vision Transformer"
(https://keras.io/examples/vision/image_classification_with_vision_transformer/): ``Patches`` and
``PatchEncoder``, plus the class-token layers of the original ViT (Dosovitskiy et al. 2020,
https://arxiv.org/abs/2010.11929). The tests pass this file with ``--trust-code``.

The example's layers, with the two changes every user makes to load a saved model: ``__init__``
takes ``**kwargs`` (Keras passes ``name``, ``dtype``, ``trainable``) and ``get_config`` returns
every argument of ``__init__``.
"""

import keras
from keras import layers, ops


class Patches(layers.Layer):
    """``(N, H, W, C)`` -> ``(N, H/p * W/p, p*p*C)``: non-overlapping p x p patches, row by row."""

    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, images):
        shape = ops.shape(images)
        patches = ops.image.extract_patches(images, size=self.patch_size)
        rows, cols = shape[1] // self.patch_size, shape[2] // self.patch_size
        return ops.reshape(patches, (shape[0], rows * cols, self.patch_size * self.patch_size * shape[3]))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


class PatchEncoder(layers.Layer):
    """A linear projection of each patch plus a learned position embedding."""

    def __init__(self, num_patches, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = num_patches
        self.projection_dim = projection_dim
        self.projection = layers.Dense(units=projection_dim)
        self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)

    def call(self, patch):
        positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
        return self.projection(patch) + self.position_embedding(positions)

    def get_config(self):
        return {**super().get_config(), "num_patches": self.num_patches, "projection_dim": self.projection_dim}


class ClassToken(layers.Layer):
    """Prepends a learned class token: ``(N, T, D)`` -> ``(N, T + 1, D)``."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="random_normal", name="token")

    def call(self, x):
        token = ops.broadcast_to(ops.cast(self.token, x.dtype), (ops.shape(x)[0], 1, ops.shape(x)[-1]))
        return ops.concatenate([token, x], axis=1)


class FirstToken(layers.Layer):
    """The class token's features: ``(N, T, D)`` -> ``(N, D)``."""

    def call(self, x):
        return x[:, 0]


def mlp(x, hidden_units, dropout_rate):
    for units in hidden_units:
        x = layers.Dense(units, activation=keras.activations.gelu)(x)
        x = layers.Dropout(dropout_rate)(x)
    return x


def vit_classifier(
    image_size=24,
    channels=3,
    patch_size=6,
    projection_dim=16,
    num_heads=2,
    transformer_layers=2,
    num_classes=3,
    class_token=False,
):
    """The keras.io example's ``create_vit_classifier`` at a tiny size (and, with ``class_token``,
    the original ViT's class token and head on it)."""
    num_patches = (image_size // patch_size) ** 2
    inputs = keras.Input((image_size, image_size, channels))
    x = layers.Rescaling(1 / 255)(inputs)
    patches = Patches(patch_size)(x)
    encoded = PatchEncoder(num_patches, projection_dim)(patches)
    if class_token:
        encoded = ClassToken()(encoded)
    for _ in range(transformer_layers):
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded)
        attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim, dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention, encoded])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        x3 = mlp(x3, hidden_units=[projection_dim * 2, projection_dim], dropout_rate=0.1)
        encoded = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-6)(encoded)
    if class_token:
        features = FirstToken()(representation)
    else:
        representation = layers.Flatten()(representation)
        features = mlp(layers.Dropout(0.5)(representation), hidden_units=[32, 16], dropout_rate=0.5)
    logits = layers.Dense(num_classes)(features)
    return keras.Model(inputs=inputs, outputs=logits, name="vit_cls" if class_token else "vit")
