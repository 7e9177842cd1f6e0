# Shared by the reference scripts: where to read the exported model frames and write the CSV.
# Usage of every script: Rscript <script>.R [OUT_DIR]  (default: this folder)
script_dir <- local({
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  normalizePath(dirname(sub("^--file=", "", file_arg[1])))
})
out_dir <- local({
  args <- commandArgs(trailingOnly = TRUE)
  if (length(args) >= 1) args[1] else script_dir
})
# The example trial's arms; placebo is the control (first level) as in crampstats.
ARMS <- c("placebo", "mexiletine", "quinine", "vitamin_b_complex", "magnesium")

read_frame <- function(name) {
  frame <- read.csv(file.path(script_dir, "data", paste0(name, ".csv")), stringsAsFactors = FALSE)
  if ("arm" %in% names(frame)) frame$arm <- factor(frame$arm, levels = ARMS)
  frame
}

# One row per reference value: data set, fit, term, estimate, standard error (NA if none).
ref_rows <- function(dataset, fit, term, estimate, se = NA_real_) {
  data.frame(dataset = dataset, fit = fit, term = term, estimate = unname(estimate),
             se = unname(se), stringsAsFactors = FALSE)
}

# Coefficients named by the arms, as crampstats names them: log_rr[arm] (or another prefix).
arm_terms <- function(names, prefix) {
  sub("^arm", paste0(prefix, "["), names) |> (\(x) ifelse(grepl("\\[", x), paste0(x, "]"), x))()
}

# The covariance of estimates ``V`` (rows and columns in the order of ``terms``), one row per pair.
cov_rows <- function(dataset, fit, terms, V) {
  pairs <- expand.grid(i = seq_along(terms), j = seq_along(terms))
  ref_rows(dataset, fit, sprintf("cov[%s,%s]", terms[pairs$i], terms[pairs$j]),
           V[cbind(pairs$i, pairs$j)])
}

write_refs <- function(rows, name) {
  rows <- do.call(rbind, rows)
  path <- file.path(out_dir, paste0(name, ".csv"))
  write.csv(rows, path, row.names = FALSE, na = "")
  cat("wrote", path, "\n")
}
