# nb_totals vs MASS::glm.nb (NB2 maximum likelihood).
# - example: the treatment totals of data/example, exported by crampstats (data/example_totals.csv:
#   count y, log exposure days, centred log run-in rate x), fitted with the model's terms.
# - quine (MASS): days absent ~ Eth + Sex + Age + Lrn; crampstats' NB2 log-likelihood is
#   evaluated at this ML estimate (the model's terms cannot express four factors and no run-in).
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])), "common.R"))
suppressPackageStartupMessages(library(MASS))

rows <- list()
ex <- read_frame("example_totals")
fit <- glm.nb(y ~ arm + x + offset(log_exposure), data = ex)
co <- summary(fit)$coefficients
rows[[1]] <- ref_rows("example", "glm.nb", arm_terms(rownames(co), "log_rr"),
                      co[, "Estimate"], co[, "Std. Error"])
rows[[7]] <- cov_rows("example", "glm.nb", arm_terms(rownames(co), "log_rr"), vcov(fit))
rows[[2]] <- ref_rows("example", "glm.nb", c("k", "logLik"),
                      c(fit$theta, as.numeric(logLik(fit))), c(fit$SE.theta, NA))

quine_fit <- glm.nb(Days ~ Eth + Sex + Age + Lrn, data = quine)
co <- summary(quine_fit)$coefficients
rows[[3]] <- ref_rows("quine", "glm.nb", rownames(co), co[, "Estimate"], co[, "Std. Error"])
rows[[4]] <- ref_rows("quine", "glm.nb", c("k", "logLik"),
                      c(quine_fit$theta, as.numeric(logLik(quine_fit))),
                      c(quine_fit$SE.theta, NA))
# the fitted means, so that the likelihood can be evaluated without refitting
rows[[5]] <- ref_rows("quine", "data", sprintf("y[%d]", seq_len(nrow(quine))), quine$Days)
rows[[6]] <- ref_rows("quine", "glm.nb", sprintf("mu[%d]", seq_len(nrow(quine))),
                      fitted(quine_fit))
write_refs(rows, "nb_totals")
