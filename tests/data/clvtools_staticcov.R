# Reference values of tests/models/test_covariates.py: CLVTools' static-covariate fits on its
# own apparel data (apparelTrans, apparelStaticCov; equal row for row to ../shared/data/apparel).
# Run once with R 4.2.2 (Debian r-base-core and r-cran-* packages) and CLVTools installed from
# https://github.com/bachmannpatrick/CLVTools at commit 1b06356 (R CMD INSTALL). Tests never run R.
suppressMessages(library(CLVTools))
data("apparelTrans"); data("apparelStaticCov")
apparel <- clvdata(apparelTrans, date.format = "ymd", time.unit = "week", estimation.split = 104,
                   name.id = "Id", name.date = "Date", name.price = "Price")
static <- SetStaticCovariates(clv.data = apparel,
                              data.cov.life = apparelStaticCov, data.cov.trans = apparelStaticCov,
                              names.cov.life = c("Gender", "Channel"),
                              names.cov.trans = c("Gender", "Channel"), name.id = "Id")
options(digits = 12)
summary(pnbd(static, verbose = FALSE))  # CLVTools' defaults: what its users see printed
tight <- list(control = list(factr = 1, pgtol = 0, maxit = 10000))  # L-BFGS-B to convergence
for (fit in list(pnbd(static, verbose = FALSE, optimx.args = tight),
                 ggomnbd(static, verbose = FALSE, optimx.args = tight),
                 bgnbd(static, verbose = FALSE, optimx.args = tight),
                 pnbd(static, verbose = FALSE, optimx.args = tight,
                      reg.lambdas = c(trans = 10, life = 10)),
                 pnbd(static, verbose = FALSE, optimx.args = tight,
                      reg.lambdas = c(trans = 0.1, life = 0.5)))) {
  print(coef(fit)); print(logLik(fit)); print(sqrt(diag(vcov(fit))))
}
