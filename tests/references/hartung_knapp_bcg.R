# Reference values for crampstats.models.multi_trial.hartung_knapp / inverse_variance_pool.
# BCG vaccine trials (Colditz et al. 1994, JAMA 271:698; the `dat.bcg` data of R's metafor):
# log risk ratios of tuberculosis, vaccinated vs not. DerSimonian-Laird tau^2 by its formula,
# then the Hartung-Knapp interval as the intercept of a weighted least-squares fit (lm with
# weights 1 / (v + tau^2)): its residual variance is HK's q, its confint uses t with k - 1 df.
# Run: Rscript tests/references/hartung_knapp_bcg.R  (writes hartung_knapp_bcg.csv beside it)
tpos <- c(4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27)
tneg <- c(119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886)
cpos <- c(11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29)
cneg <- c(128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825)
yi <- log((tpos / (tpos + tneg)) / (cpos / (cpos + cneg)))
vi <- 1 / tpos - 1 / (tpos + tneg) + 1 / cpos - 1 / (cpos + cneg)
k <- length(yi)
w <- 1 / vi
fixed <- sum(w * yi) / sum(w)
Q <- sum(w * (yi - fixed)^2)
tau2 <- max(0, (Q - (k - 1)) / (sum(w) - sum(w^2) / sum(w)))
fit <- lm(yi ~ 1, weights = 1 / (vi + tau2))
ci <- confint(fit, level = 0.95)
re_se <- sqrt(1 / sum(1 / (vi + tau2)))
pi_half <- qt(0.975, k - 2) * sqrt(tau2 + re_se^2)
out <- data.frame(
  quantity = c("tau2", "q_cochran", "estimate", "se_wald", "se_hk", "hk_lower", "hk_upper",
               "pi_lower", "pi_upper"),
  value = c(tau2, Q, unname(coef(fit)[1]), re_se, summary(fit)$coefficients[1, 2], ci[1, 1],
            ci[1, 2], unname(coef(fit)[1]) - pi_half, unname(coef(fit)[1]) + pi_half)
)
write.csv(out, file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))),
                         "hartung_knapp_bcg.csv"), row.names = FALSE)
data <- data.frame(yi = yi, vi = vi)
write.csv(data, file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))),
                          "hartung_knapp_bcg_data.csv"), row.names = FALSE)
