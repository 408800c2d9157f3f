#!/usr/bin/env Rscript
# explain from R: open a Keras model saved by R, read its top-5, see where it looks, write a report.
#
#   Rscript examples/explain_from_r.R [MODEL.h5] [OUT_DIR]
#
# MODEL.h5  a model saved with save_model_hdf5() (or save_model_tf()'s folder, or keras3's .keras file).
#           Left out (or ""): a small CNN is trained here on 600 Fashion-MNIST images, as the R
#           tutorials do, and saved as save_model_hdf5() saves it.
# OUT_DIR   where the Grad-CAM picture, the report and a made model go (default: explain_from_r).
#
# explain is a Python package: R drives it through reticulate, in the Python explain is installed in
# (RETICULATE_PYTHON if set, else the python3 on PATH). The model's classes are Fashion-MNIST's, and
# it expects pixels / 255 (preprocessing mode "unit"); change both for a model of your own.

# One clear line and exit status 2, never an R traceback.
fail <- function(...) {
  message(...)
  quit(save = "no", status = 2)
}

for (package in c("reticulate", "jsonlite")) {
  if (!requireNamespace(package, quietly = TRUE)) {
    fail("The R package ", package, " is missing: install.packages(\"", package, "\") ",
         "(Debian: apt-get install r-cran-", package, ").")
  }
}
suppressPackageStartupMessages({
  library(reticulate)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
model_path <- if (length(args) >= 1 && nzchar(args[[1]])) args[[1]] else NA
out_dir <- if (length(args) >= 2) args[[2]] else "explain_from_r"
if (!nzchar(Sys.getenv("TF_CPP_MIN_LOG_LEVEL"))) Sys.setenv(TF_CPP_MIN_LOG_LEVEL = "2")  # TensorFlow's noise

# -- 1. The Python explain is installed in ---------------------------------------------------------------
python <- Sys.getenv("RETICULATE_PYTHON")
from <- if (nzchar(python)) "RETICULATE_PYTHON" else "the python3 on PATH"
if (!nzchar(python)) python <- Sys.which("python3")
how_to <- function(problem) fail(
  problem, " (", from, "). Run `pip install -e .` in the explain repository with that Python, ",
  "or set RETICULATE_PYTHON=/path/to/python of an environment that has explain."
)
if (!nzchar(python)) how_to("No python3 on PATH")
# Ask the interpreter where it lives: through a pyenv shim or a link reticulate may load another libpython.
real <- suppressWarnings(tryCatch(
  system2(python, c("-c", shQuote("import sys; print(sys.executable)")), stdout = TRUE, stderr = FALSE),
  error = function(e) character()
))
if (length(real) != 1 || !nzchar(real)) how_to(paste(python, "does not run as Python"))
Sys.setenv(RETICULATE_PYTHON = real)
tryCatch(use_python(real, required = TRUE), error = function(e) how_to(paste("Python", real, "cannot load")))
if (!py_module_available("explain")) how_to(paste("Python", real, "has no module explain"))

# convert = FALSE: arrays stay in Python (no copies, and reticulate before 1.36 cannot convert NumPy 2
# arrays); py_to_r() brings the small results (lists, strings, numbers) into R.
explain <- import("explain", convert = FALSE)
np <- import("numpy", convert = FALSE)
first <- function(a, n) py_get_item(a, import_builtins()$slice(0L, as.integer(n)))  # R's a[1:n, ...]

main <- function() {
  test <- explain$load_builtin_split("fashion_mnist", "test")  # uint8 (10000, 28, 28, 1), labels, names
  classes <- unlist(py_to_r(test$class_names))
  if (is.na(model_path)) {
    dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
    model_path <- make_model(file.path(out_dir, "fashion_mnist_from_r.h5"))
  }

  # -- 2. Open the model: a Keras 2 .h5 is checked, then rebuilt in Keras 3 (no code in it runs) --------
  model <- explain$load_model(model_path)
  image <- first(test$images, 1)  # one image, raw pixels 0-255, as a batch of 1

  # -- 3. Top-5 as an R data frame. explain feeds raw pixels; preprocess = "unit" divides by 255 -------
  prediction <- py_get_item(explain$predict(model, image, classes, k = 5L, preprocess = "unit"), 0L)
  top5 <- py_to_r(prediction$top_k)  # list of (class index, class name, probability)
  top5 <- data.frame(
    class = vapply(top5, function(t) t[[2]], ""),
    probability = round(vapply(top5, function(t) t[[3]], 0), 3)
  )
  truth <- classes[py_to_r(py_get_item(test$labels, 0L)$item()) + 1]  # labels count from 0, R from 1
  cat(sprintf("Top-5 for test image 1 (true class: %s):\n", truth))
  print(top5)

  # -- 4. Grad-CAM of the top class, drawn over the image ------------------------------------------------
  # A Python class, or an object one calls, is called with py_call() under convert = FALSE.
  gradcam <- py_call(explain$get_method("gradcam"), model, preprocess = "unit")
  att <- py_call(gradcam, image)  # heatmap (1, 28, 28) in [0, 1], class_index, score, layer
  title <- sprintf("Grad-CAM for %s at layer %s", top5$class[1], py_to_r(att$layer))
  flat <- py_to_r(py_get_item(att$flat, 0L)$item())  # a constant map says nothing: drawn with a note
  fig <- explain$heatmap_overlay(
    py_get_item(image, 0L), py_get_item(att$heatmap, 0L), title = title, flat = flat, colorbar = TRUE
  )
  dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
  png_path <- file.path(out_dir, "gradcam.png")
  fig$savefig(png_path, dpi = 120L)
  cat("\nGrad-CAM written to ", png_path, "\n", sep = "")

  # -- 5. A report on the first 500 test images: per-class accuracy, confusions with Grad-CAM, HTML -----
  sample <- explain$ArraySource(
    "fashion_mnist:test (first 500)", first(test$images, 500), first(test$labels, 500), classes
  )
  card <- explain$load_model_card(model_path, model, preprocess = "unit", classes = classes)
  report_dir <- file.path(out_dir, "report")
  explain$write_report(
    model, sample, report_dir,
    model_path = model_path, card = card, progress = FALSE, embedding = FALSE, confusions = 3L, examples = 4L
  )
  cat("Report written to ", file.path(report_dir, "report.html"), "\n", sep = "")

  # -- 6. metrics.json back into R: one row per class ------------------------------------------------------
  metrics <- fromJSON(file.path(report_dir, "metrics.json"))
  value <- function(x) if (is.null(x)) NA_real_ else round(x, 3)  # null: a class never predicted
  per_class <- do.call(rbind, lapply(names(metrics$per_class), function(name) {
    m <- metrics$per_class[[name]]
    data.frame(class = name, precision = value(m$precision), recall = value(m$recall),
               f1 = value(m[["f1-score"]]), support = m$support)
  }))
  cat(sprintf("\nAccuracy on %d test images: %.3f\n", metrics$num_images, metrics$accuracy))
  print(per_class)
}

# A small Keras 2 CNN trained for one short epoch and saved as save_model_hdf5() saves it. R's keras
# package drives the same Keras 2 (tf_keras, once tf$keras) through reticulate; in R this is
#   model <- keras_model_sequential() %>%
#     layer_conv_2d(filters = 16, kernel_size = c(3, 3), activation = "relu", input_shape = c(28, 28, 1)) %>%
#     layer_max_pooling_2d(pool_size = c(2, 2)) %>% layer_flatten() %>%
#     layer_dense(units = 64, activation = "relu") %>% layer_dense(units = 10, activation = "softmax")
#   model %>% compile(optimizer = "adam", loss = "sparse_categorical_crossentropy", metrics = "accuracy")
#   model %>% fit(x_train / 255, y_train, epochs = 1)
#   save_model_hdf5(model, path)
make_model <- function(path) {
  keras <- import("tf_keras", convert = FALSE)
  keras$utils$set_random_seed(1L)  # tensorflow::set_random_seed(1): the same model every run
  layers <- keras$layers
  model <- keras$Sequential(list(
    layers$Conv2D(16L, tuple(3L, 3L), activation = "relu", input_shape = tuple(28L, 28L, 1L)),
    layers$MaxPooling2D(tuple(2L, 2L)),
    layers$Flatten(),
    layers$Dense(64L, activation = "relu"),
    layers$Dense(10L, activation = "softmax")
  ))
  model$compile(optimizer = "adam", loss = "sparse_categorical_crossentropy", metrics = list("accuracy"))
  train <- explain$load_builtin_split("fashion_mnist", "train")
  x_train <- np$divide(first(train$images, 600), 255)  # scaled / 255 as the tutorials do
  model$fit(x_train, first(train$labels, 600), epochs = 1L, batch_size = 16L, verbose = 0L)
  import("warnings")$filterwarnings("ignore", message = ".*HDF5 file via `model.save")  # "legacy format"
  model$save(path, save_format = "h5")  # what save_model_hdf5() calls: a Keras 2 HDF5 file
  cat("Trained a small CNN on 600 Fashion-MNIST images, saved as ", path, "\n\n", sep = "")
  path
}

# An error from explain (a bad model file, a bad folder) is one line too.
tryCatch(main(), error = function(e) fail(sub("^[A-Za-z_.]*[.]", "", sub("\n.*", "", conditionMessage(e)))))
