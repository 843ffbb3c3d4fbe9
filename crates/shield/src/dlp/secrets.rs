//! Credentials in text: cloud keys, SaaS tokens, private keys, JWTs, connection strings with
//! passwords, and generic `password = "..."` / `api_key: ...` assignments.
//!
//! The families are the ones secret scanners (gitleaks, detect-secrets, trufflehog) agree on,
//! written from the vendors' published token formats. Each rule has *keywords*: short literals
//! every match must contain (a token's prefix, a vendor's name). One Aho-Corasick pass over the
//! text finds which keywords occur; only the rules they name run their regular expression, so a
//! text with no candidate costs one linear scan. A match is then *validated* where its format
//! allows it: a JWT's header must decode to JSON naming an algorithm, a private key needs a body,
//! and every candidate must look random enough (Shannon entropy) and not be a placeholder
//! (`xxxx`, `<your token>`, `${VAR}`, `changeme`).
//!
//! Pure: no I/O, no clock.

use super::{ceil_boundary, floor_boundary};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use std::sync::LazyLock;

/// A credential found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    /// The family (`aws`, `github`, `jwt`, `generic_password`, ...).
    pub family: &'static str,
    /// Byte range of the secret value itself (what a redaction replaces).
    pub start: usize,
    /// End of the value (exclusive).
    pub end: usize,
}

/// How a candidate is checked beyond its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Entropy and placeholder checks only.
    Plain,
    /// A JSON Web Token: the header decodes to JSON with `alg` or `typ`.
    Jwt,
    /// A PEM private key: its body is long enough to be a key.
    PemBody,
    /// A password-like value: placeholders refused, a lower entropy bar.
    Password,
    /// A Kubernetes Secret manifest: a base64 value under `data:`.
    KubernetesData,
    /// A generic `key = value` assignment: the key must name a credential.
    Generic,
    /// A generic comparison `"value" == password`.
    Comparison,
    /// A random token: letters and digits both present (identifiers rarely have digits).
    Random,
}

struct Rule {
    family: &'static str,
    /// Lower-case literals; the rule runs only when one occurs (ASCII case-insensitive).
    keywords: &'static [&'static str],
    /// Group 1, when present, is the secret; otherwise the whole match.
    pattern: &'static str,
    /// Minimum Shannon entropy (bits per character) of the secret.
    entropy: f32,
    check: Check,
}

const fn rule(
    family: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    entropy: f32,
) -> Rule {
    Rule {
        family,
        keywords,
        pattern,
        entropy,
        check: Check::Plain,
    }
}

const fn checked(
    family: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    entropy: f32,
    check: Check,
) -> Rule {
    Rule {
        family,
        keywords,
        pattern,
        entropy,
        check,
    }
}

/// The rules, by family. Vendor-prefixed formats first (precise), generic ones last.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // Cloud providers.
        rule(
            "aws",
            &["akia", "asia", "abia", "acca", "a3t"],
            r"(?:^|[^0-9A-Z])((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "aws",
            &["aws"],
            r#"(?i)aws.{0,20}?(?:secret|private|access).{0,20}?['"]?[ \t\n\r\x0B\x0C]*(?:=|:|=>)[ \t\n\r\x0B\x0C]*['"]?([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#,
            4.0,
        ),
        rule(
            "gcp_api_key",
            &["aiza"],
            r"(?:^|[^0-9A-Za-z_-])(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
            4.0,
        ),
        rule(
            "gcp",
            &["service_account"],
            r#"("type"[ \t\n\r\x0B\x0C]*:[ \t\n\r\x0B\x0C]*"service_account")"#,
            0.0,
        ),
        rule(
            "gcp",
            &["service_account"],
            r#""type"[ \t\n\r\x0B\x0C]*:[ \t\n\r\x0B\x0C]*"service_account"[ \t\n\r\x0B\x0C\S]{0,400}?"private_key"[ \t\n\r\x0B\x0C]*:[ \t\n\r\x0B\x0C]*"(-----BEGIN[^"]{64,})""#,
            3.0,
        ),
        rule(
            "azure",
            &["q~"],
            r"(?:^|[^0-9A-Za-z_~.\-])([0-9A-Za-z_~.\-]{3}[0-9]Q~[0-9A-Za-z_~.\-]{31,34})(?:[^0-9A-Za-z_~.\-]|$)",
            3.5,
        ),
        rule(
            "azure",
            &["accountkey"],
            r"(?i)AccountKey[ \t\n\r\x0B\x0C]*=[ \t\n\r\x0B\x0C]*([A-Za-z0-9+/]{86}==)",
            4.0,
        ),
        rule(
            "azure",
            &["sig="],
            r"(?i)[?&]sig=([A-Za-z0-9%+/]{40,}(?:=|%3D){0,2})",
            4.0,
        ),
        rule(
            "alibaba",
            &["ltai"],
            r"(?:^|[^0-9A-Za-z])(LTAI[a-zA-Z0-9]{20})(?:[^0-9A-Za-z]|$)",
            3.5,
        ),
        rule(
            "digitalocean",
            &["dop_v1_", "doo_v1_", "dor_v1_"],
            r"(do[opr]_v1_[a-f0-9]{64})",
            3.0,
        ),
        rule(
            "databricks",
            &["dapi"],
            r"(?:^|[^0-9A-Za-z])(dapi[a-f0-9]{32}(?:-[0-9])?)(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "fly",
            &["fo1_", "fm1a_", "fm1r_", "fm2_"],
            r"(?:^|[^0-9A-Za-z_%])((?:fo1_[0-9A-Za-z_-]{43}|fm1[ar]_[a-zA-Z0-9+/]{100,}={0,3}|fm2_[a-zA-Z0-9+/]{100,}={0,3}))",
            3.5,
        ),
        rule("heroku", &["hrku-"], r"(HRKU-AA[0-9a-zA-Z_-]{58})", 3.5),
        rule(
            "heroku",
            &["heroku"],
            r"(?i)heroku[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
            3.0,
        ),
        rule(
            "hashicorp",
            &["atlasv1"],
            r"([a-z0-9]{14}\.atlasv1\.[a-z0-9\-_=]{60,70})",
            3.5,
        ),
        rule(
            "hashicorp",
            &["hvs.", "hvb."],
            r"(?:^|[^0-9A-Za-z_.])(hv[sb]\.[0-9A-Za-z_-]{90,})",
            3.5,
        ),
        rule(
            "hashicorp",
            &["vault"],
            r"(?i)vault[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}['\x22]?(s\.[A-Za-z0-9]{24})(?:[^A-Za-z0-9]|$)",
            3.5,
        ),
        checked(
            "hashicorp",
            &["token", "vault"],
            r"(?:^|[^0-9A-Za-z_.])(s\.[a-zA-Z0-9]{24})(?:[^0-9A-Za-z_.]|$)",
            3.8,
            Check::Random,
        ),
        rule(
            "openshift",
            &["sha256~"],
            r"(sha256~[0-9A-Za-z_-]{43})(?:[^0-9A-Za-z_-]|$)",
            3.5,
        ),
        rule("scalingo", &["tk-us-"], r"(tk-us-[0-9A-Za-z_-]{48})", 3.5),
        rule(
            "clickhouse",
            &["4b1d"],
            r"(?:^|[^0-9A-Za-z])(4b1d[A-Za-z0-9]{38})(?:[^0-9A-Za-z]|$)",
            3.5,
        ),
        rule(
            "kubernetes",
            &["secret"],
            r"(?i)kind:[ \t\n\r\x0B\x0C]*['\x22]?secret['\x22]?",
            0.0,
        )
        .with(Check::KubernetesData),
        // Source hosting and package registries.
        rule(
            "github",
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            r"(?:^|[^0-9A-Za-z])(gh[pousr]_[0-9a-zA-Z]{36})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "github",
            &["github_pat_"],
            r"(github_pat_[0-9A-Za-z_]{82})",
            3.0,
        ),
        rule(
            "gitlab",
            &[
                "glpat-",
                "gldt-",
                "glrt-",
                "glcbt-",
                "glsoat-",
                "glffct-",
                "glimt-",
                "glagent-",
                "glft-",
                "gloas-",
                "glptt-",
                "gr1348941",
            ],
            r"(?:^|[^0-9A-Za-z])((?:glpat|gldt|glrt|glsoat|glffct|glft|glimt)-[0-9A-Za-z_-]{20,}|glcbt-(?:[0-9a-fA-F]{2}_)?[0-9A-Za-z_-]{20}|glagent-[0-9A-Za-z_-]{50,}|gloas-[0-9A-Za-z_-]{64}|glptt-[0-9A-Za-z_-]{40}|GR1348941[0-9A-Za-z_-]{20})(?:[^0-9A-Za-z_-]|$)",
            3.0,
        ),
        rule("bitbucket", &["atbb"], r"(ATBB[a-zA-Z0-9]{32})", 3.5),
        rule(
            "npm",
            &["npm_"],
            r"(?:^|[^0-9A-Za-z])(npm_[a-zA-Z0-9]{36})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "npm",
            &["_authtoken"],
            r"(?i)//[0-9A-Za-z_.\-/:]+/:_authToken[ \t\n\r\x0B\x0C]*=[ \t\n\r\x0B\x0C]*['\x22]?([^ \t\n\r\x0B\x0C'\x22]{8,})",
            3.0,
        ),
        rule(
            "pypi",
            &["pypi-ageichlwas5vcmc"],
            r"(pypi-AgEIcHlwaS5vcmc[0-9A-Za-z_-]{50,})",
            3.0,
        ),
        rule(
            "nuget",
            &["oy2"],
            r"(?:^|[^0-9A-Za-z])(oy2[a-z0-9]{43})(?:[^0-9A-Za-z]|$)",
            3.5,
        ),
        rule(
            "nuget",
            &["password"],
            r#"(?i)<add[ \t\n\r\x0B\x0C]+key=\x22(?:ClearText)?Password\x22[ \t\n\r\x0B\x0C]+value=\x22([^\x22]{4,})\x22"#,
            2.0,
        ),
        rule("rubygems", &["rubygems_"], r"(rubygems_[a-f0-9]{48})", 3.0),
        rule(
            "sidekiq",
            &["contribsys"],
            r"(?i)BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM[ \t\n\r\x0B\x0C]*(?:=|:)[ \t\n\r\x0B\x0C]*['\x22]?([a-f0-9]{8}:[a-f0-9]{8})",
            2.0,
        ),
        rule(
            "sidekiq",
            &["contribsys"],
            r"(?i)https?://([a-f0-9]{8}:[a-f0-9]{8})@(?:gems|enterprise)\.contribsys\.com",
            2.0,
        ),
        rule(
            "octopusdeploy",
            &["api-"],
            r"(?:^|[^0-9A-Za-z\-])(API-[A-Z0-9]{26})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "sonar",
            &["sqp_", "squ_", "sqa_"],
            r"(?:^|[^0-9A-Za-z])(sq[pua]_[0-9a-f]{40})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "sonar",
            &["sonar"],
            r"(?i)sonar[0-9A-Za-z_.\-]{0,20}?(?:token|key|login)[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([a-z0-9]{40})(?:[^a-z0-9]|$)",
            3.0,
        ),
        rule(
            "snyk",
            &["snyk"],
            r"(?i)snyk[0-9A-Za-z_.\-]{0,20}?(?:token|key|api|pat|auth)[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
            3.0,
        ),
        rule(
            "sourcegraph",
            &["sgp_"],
            r"(sgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|sgp_[a-fA-F0-9]{40})",
            3.0,
        ),
        rule(
            "sourcegraph",
            &["sourcegraph"],
            r"(?i)sourcegraph[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}([a-f0-9]{40})(?:[^a-f0-9]|$)",
            3.0,
        ),
        rule(
            "jfrog",
            &["akcp"],
            r"(?:^|[^0-9A-Za-z])(AKCp[A-Za-z0-9]{69})(?:[^0-9A-Za-z]|$)",
            4.0,
        ),
        rule(
            "atlassian",
            &["atatt3"],
            r"(ATATT3[A-Za-z0-9_\-=]{186})",
            3.5,
        ),
        rule(
            "atlassian",
            &["atlassian", "confluence", "jira"],
            r"(?i)(?:atlassian|confluence|jira)[0-9A-Za-z_.\-]{0,20}?(?:token|key|secret|pass)[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([a-zA-Z0-9]{24})(?:[^a-zA-Z0-9]|$)",
            3.5,
        ),
        // Messaging, payments, SaaS APIs.
        rule(
            "slack",
            &["xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxr-", "xoxs-", "xoxe"],
            r"((?:xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{150,}|xoxe-[0-9]-[A-Za-z0-9]{140,}|xox[baprs]-[0-9]+-[0-9A-Za-z-]{6,}[0-9A-Za-z]|xox[os]-[0-9]+-[0-9]+-[0-9]+-[a-fA-F0-9]+))(?:[^#0-9A-Za-z\-]|$)",
            2.5,
        ),
        rule(
            "slack",
            &["xapp-"],
            r"(xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]+)",
            3.0,
        ),
        rule(
            "slack",
            &["hooks.slack.com"],
            r"(hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56})",
            3.0,
        ),
        rule(
            "discord",
            &["discord"],
            r"(?i)discord[0-9A-Za-z_.\-]{0,20}?(?:token|key|secret|id)?[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([a-f0-9]{64}|[0-9]{18,19}|[a-z0-9=_\-]{32})(?:[^a-z0-9=_\-]|$)",
            3.0,
        ),
        rule(
            "discord",
            &[],
            r"(?:^|[^0-9A-Za-z_.\-])([MNO][A-Za-z0-9]{23,25}\.[0-9A-Za-z_-]{6}\.[0-9A-Za-z_-]{27,38})(?:[^0-9A-Za-z_.\-]|$)",
            4.0,
        ),
        rule(
            "discord",
            &["discord"],
            r"(?i)(discord(?:app)?\.com/api/webhooks/[0-9]+/[0-9A-Za-z_-]+)",
            3.0,
        ),
        rule(
            "telegram",
            &[":aa"],
            r"(?:^|[^0-9A-Za-z_])([0-9]{5,16}:AA[a-zA-Z0-9_\-]{33})(?:[^a-zA-Z0-9_\-]|$)",
            3.5,
        ),
        rule(
            "facebook",
            &["eaam", "eaac"],
            r"(EAA[MC][a-zA-Z0-9]{100,})",
            3.5,
        ),
        rule(
            "facebook",
            &["facebook"],
            r"(?i)facebook[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}([a-f0-9]{32})(?:[^a-f0-9]|$)",
            3.0,
        ),
        rule(
            "facebook",
            &["facebook"],
            r"(?:^|[^0-9])([0-9]{15,16}(?:\||%7C|%7c)[0-9A-Za-z\-_]{27,40})(?:[^0-9A-Za-z\-_]|$)",
            3.5,
        ),
        rule(
            "twitter",
            &["twitter"],
            r"(?i)twitter[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}([a-zA-Z0-9]{35,50}|[0-9]{15,25}-[a-zA-Z0-9]{20,40})(?:[^a-zA-Z0-9]|$)",
            3.5,
        ),
        rule(
            "stripe",
            &[
                "sk_test_", "sk_live_", "sk_prod_", "rk_test_", "rk_live_", "rk_prod_",
            ],
            r"(?:^|[^0-9A-Za-z])((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "square",
            &["sq0atp-", "sq0csp-", "eaaa"],
            r"(sq0atp-[0-9A-Za-z\-_]{22}|sq0csp-[0-9A-Za-z\-_]{43}|(?:^|[^0-9A-Za-z])EAAA[0-9A-Za-z_-]{60})",
            3.5,
        ),
        rule(
            "paypal",
            &["access_token$production$"],
            r"(access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})",
            3.0,
        ),
        rule(
            "shopify",
            &["shpat_", "shpca_", "shppa_", "shpss_"],
            r"(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})",
            3.0,
        ),
        rule(
            "twilio",
            &["twilio"],
            r"(?:^|[^0-9A-Za-z])(SK[0-9a-fA-F]{32})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "sendgrid",
            &["sg."],
            r"(SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43})",
            4.0,
        ),
        rule(
            "mailgun",
            &["key-"],
            r"(?i)mailgun[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}(key-[a-f0-9]{32})",
            3.0,
        ),
        rule(
            "mailchimp",
            &["-us"],
            r"(?:^|[^0-9a-f])([0-9a-f]{32}-us[0-9]{1,2})(?:[^0-9]|$)",
            3.0,
        ),
        rule(
            "messagebird",
            &["messagebird", "message-bird", "message_bird"],
            r"(?i)message[_-]?bird[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}([a-z0-9]{25}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:[^a-z0-9\-]|$)",
            3.0,
        ),
        rule(
            "notion",
            &["ntn_"],
            r"(ntn_[0-9]{11}[A-Za-z0-9]{32}[A-Za-z0-9]{3})",
            3.0,
        ),
        rule(
            "notion",
            &["secret_"],
            r"(?i)notion[ \t\n\r\x0B\x0C\S]{0,40}?(secret_[A-Za-z0-9]{43})",
            3.0,
        ),
        rule(
            "okta",
            &["okta"],
            r"(?i)okta[0-9A-Za-z_.\-]{0,20}?[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}(00[0-9A-Za-z_=\-]{40})(?:[^0-9A-Za-z_=\-]|$)",
            3.5,
        ),
        rule(
            "sentry",
            &["sntrys_"],
            r"(sntrys_eyJ[a-zA-Z0-9=_+/]{100,})",
            3.5,
        ),
        rule("sentry", &["sntryu_"], r"(sntryu_[a-f0-9]{64})", 3.0),
        rule(
            "sentry",
            &["sentry", "ingest"],
            r"(https?://[0-9a-f]{32}@[0-9A-Za-z_.\-]*(?:sentry\.io|ingest)[0-9A-Za-z_.\-/]*)",
            3.0,
        ),
        rule(
            "sentry",
            &["sentry"],
            r"(?i)sentry[0-9A-Za-z_.\-]{0,20}?(?:token|key|auth)[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([a-f0-9]{64})(?:[^a-f0-9]|$)",
            3.0,
        ),
        rule(
            "sumo_logic",
            &["sumo"],
            r"(?i)sumo[0-9A-Za-z_.\-]{0,20}?(?:access)?[_\-.]?id[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}(su[a-zA-Z0-9]{12})(?:[^a-zA-Z0-9]|$)",
            3.0,
        ),
        rule(
            "sumo_logic",
            &["sumo"],
            r"(?i)sumo[0-9A-Za-z_.\-]{0,20}?(?:key|token|secret)[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([a-zA-Z0-9]{64})(?:[^a-zA-Z0-9]|$)",
            3.5,
        ),
        rule("grafana", &["glc_"], r"(glc_[A-Za-z0-9+/]{32,}={0,2})", 3.5),
        rule(
            "grafana",
            &["glsa_"],
            r"(glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})",
            3.5,
        ),
        rule(
            "grafana",
            &["eyjrijoi"],
            r"(eyJrIjoi[A-Za-z0-9]{70,}={0,2})",
            3.5,
        ),
        rule(
            "datadog",
            &["datadog", "dd_api_key", "dd_app_key"],
            r"(?i)(?:datadog|dd_ap[ip]_key)[0-9A-Za-z_.\-]{0,20}[ \t\n\r\x0B\x0C'\x22\\:=?]{1,7}([a-f0-9]{32}|[a-f0-9]{40})(?:[^a-f0-9]|$)",
            3.0,
        ),
        rule(
            "newrelic",
            &["nrak-", "nrjs-", "nrii-"],
            r"(NR(?:AK|JS|II)-[a-zA-Z0-9\-]{27,})",
            3.0,
        ),
        rule(
            "dropbox",
            &["sl."],
            r"(?:^|[^0-9A-Za-z_.])(sl\.[0-9A-Za-z_\-=]{135,})",
            4.0,
        ),
        rule("linear", &["lin_api_"], r"(lin_api_[a-zA-Z0-9]{40})", 3.5),
        rule(
            "postman",
            &["pmak-"],
            r"(PMAK-[a-f0-9]{24}-[a-f0-9]{34})",
            3.0,
        ),
        rule("doppler", &["dp.pt."], r"(dp\.pt\.[a-zA-Z0-9]{43})", 3.5),
        rule("pulumi", &["pul-"], r"(pul-[a-f0-9]{40})", 3.0),
        rule(
            "1password",
            &["ops_eyj"],
            r"(ops_eyJ[a-zA-Z0-9+/]{250,}={0,3})",
            3.5,
        ),
        rule(
            "1password",
            &["a3-"],
            r"(?:^|[^0-9A-Za-z])(A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})(?:[^0-9A-Za-z]|$)",
            3.0,
        ),
        rule(
            "intra42",
            &["s-s4t2"],
            r"(s-s4t2(?:ud|af)-[a-f0-9]{64})",
            3.0,
        ),
        rule(
            "maxmind",
            &["_mmk"],
            r"([A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk)",
            3.5,
        ),
        rule(
            "freemius",
            &["secret_key"],
            r#"(?i)['\x22]secret_key['\x22][ \t\n\r\x0B\x0C]*=>[ \t\n\r\x0B\x0C]*['\x22](sk_[^'\x22 \t\n\r\x0B\x0C]{29})['\x22]"#,
            3.0,
        ),
        rule(
            "cloudant",
            &["cloudant"],
            r"(?i)cloudant[0-9A-Za-z_.\-]{0,20}?(?:pass|key|secret|pwd|token)[0-9A-Za-z_.\-]{0,10}[ \t\n\r\x0B\x0C'\x22\\]{0,3}(?:[:?!]{0,3}=|:|=>|\|\|)[ \t\n\r\x0B\x0C'\x22\\]{0,5}([a-z0-9]{24,64})(?:[^a-z0-9]|$)",
            3.0,
        ),
        rule(
            "cloudant",
            &["cloudant"],
            r"(?i)https?://[0-9A-Za-z_\-]+:([0-9a-z]{64}|[a-z]{24})@[0-9A-Za-z_\-]+\.cloudant",
            3.0,
        ),
        // AI providers.
        rule(
            "openai",
            &["t3blbkfj"],
            r"(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{8,}T3BlbkFJ[A-Za-z0-9_-]{8,})",
            3.5,
        ),
        rule(
            "openai",
            &["sk-"],
            r"(?:^|[^0-9A-Za-z\-])(sk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_-]{58,}|sk-[a-zA-Z0-9]{48})(?:[^0-9A-Za-z_\-]|$)",
            4.0,
        ),
        rule(
            "anthropic",
            &["sk-ant-"],
            r"(sk-ant-(?:api[0-9][0-9]|admin[0-9][0-9])-[0-9A-Za-z_-]{80,}AA)",
            3.5,
        ),
        rule(
            "huggingface",
            &["hf_"],
            r"(?:^|[^0-9A-Za-z])(hf_[a-zA-Z]{34})(?:[^0-9A-Za-z]|$)",
            3.5,
        ),
        rule(
            "huggingface",
            &["api_org_"],
            r"(?:^|[^0-9A-Za-z])(api_org_[a-zA-Z]{34})(?:[^0-9A-Za-z]|$)",
            3.5,
        ),
        rule("perplexity", &["pplx-"], r"(pplx-[a-zA-Z0-9]{48})", 3.5),
        rule("groq", &["gsk_"], r"(gsk_[a-zA-Z0-9]{52})", 3.5),
        rule(
            "replicate",
            &["r8_"],
            r"(?:^|[^0-9A-Za-z])(r8_[a-zA-Z0-9]{37})(?:[^0-9A-Za-z]|$)",
            3.5,
        ),
        // Structural formats.
        checked(
            "private_key",
            &["private key"],
            r"(-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[ \t\n\r\x0B\x0C\S]*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)",
            0.0,
            Check::PemBody,
        ),
        checked(
            "jwt",
            &["eyj"],
            r"(?:^|[^0-9A-Za-z_.\-])(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_\-]*)",
            3.0,
            Check::Jwt,
        ),
        checked(
            "connection_string",
            &["://"],
            r"(?i)(?-u:\b)(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql|sqlserver|oracle|jdbc:[a-z]+|ftp|sftp|smtps?|ldaps?|https?)://[^ \t\n\r\x0B\x0C:@/'\x22`<>]{1,64}:([^ \t\n\r\x0B\x0C:@/'\x22`<>]{3,128})@[0-9A-Za-z_.\-\[\]]+",
            2.0,
            Check::Password,
        ),
        // curl with credentials.
        checked(
            "curl",
            &["curl"],
            r#"(?i)curl(?-u:\b)[ \t\n\r\x0B\x0C\S]{0,300}?[ \t\n\r\x0B\x0C](?:-u|--user)[ \t\n\r\x0B\x0C]+['\x22]?([^ \t\n\r\x0B\x0C'\x22]*:[^ \t\n\r\x0B\x0C'\x22]*)"#,
            2.5,
            Check::Password,
        ),
        checked(
            "curl",
            &["curl"],
            r#"(?i)curl(?-u:\b)[ \t\n\r\x0B\x0C\S]{0,300}?(?:-H|--header)[ \t\n\r\x0B\x0C]*['\x22](?:authorization|[0-9A-Za-z_-]*(?:api[_-]?key|token|auth)[0-9A-Za-z_-]*)[ \t\n\r\x0B\x0C]*:[ \t\n\r\x0B\x0C]*(?:(?:bearer|basic|token|digest)[ \t\n\r\x0B\x0C]+)?([^ \t\n\r\x0B\x0C'\x22]{8,})['\x22]"#,
            3.0,
            Check::Password,
        ),
        // Generic assignments: a key naming a credential, a value that looks like one.
        checked(
            "generic_password",
            &[
                "pass", "pwd", "secret", "api", "key", "token", "auth", "cred",
            ],
            GENERIC_ASSIGNMENT,
            0.0,
            Check::Generic,
        ),
        checked(
            "generic_password",
            &["pass", "pwd", "secret", "api", "key", "token"],
            GENERIC_COMPARISON,
            0.0,
            Check::Comparison,
        ),
    ]
});

impl Rule {
    const fn with(mut self, check: Check) -> Rule {
        self.check = check;
        self
    }
}

/// `<key naming a credential> <operator> <value>`: `password = "..."`, `api_key: ...`,
/// `secret("...")`, `apikey == "..."`. Group 1 is the key, 2 to 4 the value (quoted or bare).
const GENERIC_ASSIGNMENT: &str = r#"(?i)((?:^|[^0-9A-Za-z_.\-])[0-9A-Za-z_.\-]{0,40}(?:pass(?:w(?:or)?d|wd|phrase)?|pwd|secrete?s?|api[_.\-]?key|apikey|access[_.\-]?key|private[_.\-]?key|auth[_.\-]?token|access[_.\-]?token|api[_.\-]?token|secret[_.\-]?key|client[_.\-]?secret|credentials?|tokens?|auth)(?:[_.\-][0-9A-Za-z_.\-]{0,20}|[0-9]{1,3}|(?-i:[A-Z])[0-9A-Za-z_]{0,20})?)(?:\[[0-9]*\])?\\?['\x22`]?(?:(?:[ \t\n\r\x0B\x0C]*(?:===|!==|==|!=|:{1,3}=|\?=|=>|=|\()[ \t\n\r\x0B\x0C]*|:[ \t\n\r\x0B\x0C]*|[ \t\n\r\x0B\x0C]+)\\?['\x22`]([^'\x22`\n\\]{1,200})\\?['\x22`]|(?:[ \t\n\r\x0B\x0C]*(?:===|!==|==|!=|:{1,3}=|\?=|=>|=)[ \t\n\r\x0B\x0C]*|:[ \t\n\r\x0B\x0C]+)([^ \t\n\r\x0B\x0C'\x22`\\]{1,200}))"#;

const GENERIC_COMPARISON: &str = r#"(?i)['\x22`]([^'\x22`\n]{6,200})['\x22`][ \t\n\r\x0B\x0C]*(?:==|===|!=|!==)[ \t\n\r\x0B\x0C]*([0-9A-Za-z_.\-]{0,30}(?:passw(?:or)?d|passwd|pwd|secrete?|api[_.\-]?key|apikey|token))(?-u:\b)"#;

struct Compiled {
    keywords: AhoCorasick,
    /// Rules without keywords: run on every text (kept few and cheap).
    always: Vec<usize>,
    /// For each keyword (by pattern id), the rules it names.
    rules_of_keyword: Vec<Vec<usize>>,
    regexes: Vec<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let mut words: Vec<&'static str> = Vec::new();
    let mut rules_of_keyword: Vec<Vec<usize>> = Vec::new();
    for (i, rule) in RULES.iter().enumerate() {
        for word in rule.keywords {
            match words.iter().position(|w| w == word) {
                Some(at) => rules_of_keyword[at].push(i),
                None => {
                    words.push(word);
                    rules_of_keyword.push(vec![i]);
                }
            }
        }
    }
    let keywords = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        // A full DFA: a few hundred kilobytes, the fastest scan (every result pays for it).
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&words)
        .expect("the secret keywords are plain literals");
    let regexes = RULES
        .iter()
        .map(|r| {
            regex::RegexBuilder::new(r.pattern)
                .size_limit(1 << 24)
                .build()
                .unwrap_or_else(|e| panic!("secret rule {} is a valid regex: {e}", r.family))
        })
        .collect();
    let always = RULES
        .iter()
        .enumerate()
        .filter(|(_, r)| r.keywords.is_empty())
        .map(|(i, _)| i)
        .collect();
    Compiled {
        keywords,
        always,
        rules_of_keyword,
        regexes,
    }
});

/// Builds the rule tables (a few milliseconds); call at start so no request pays for it.
pub fn warm_up() {
    LazyLock::force(&COMPILED);
}

/// Whether `text` may hold a credential: a keyword of some rule, or the shape of the one family
/// without keywords. False means [`find`] would find nothing.
pub fn may_contain(text: &str) -> bool {
    COMPILED.keywords.is_match(text) || keyless_shape(text)
}

/// Every rule's keywords, each once (lower case, matched ASCII case-insensitively).
pub(crate) fn keywords() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    for word in RULES.iter().flat_map(|r| r.keywords.iter()) {
        if !words.contains(word) {
            words.push(word);
        }
    }
    words
}

/// Whether `text` has the shape of the rules without keywords (a dotted token).
pub(crate) fn keyless_shape(text: &str) -> bool {
    dotted_token(text.as_bytes())
}

/// Every credential in `text`, in order, without overlaps.
///
/// A tool's output is often JSON written as text (`"text": "api_key = \"...\""`): where the
/// text holds backslash escapes it is also read unescaped, and what is found there is mapped
/// back to the escaped text, so that a redaction covers the value as the client sees it.
pub fn find(text: &str) -> Vec<SecretMatch> {
    let mut found = find_in(text);
    if memchr::memchr(b'\\', text.as_bytes()).is_some() {
        let (plain, map) = unescape(text);
        for m in find_in(&plain) {
            let start = map[m.start];
            let end = map[m.end];
            if !found.iter().any(|f| f.start < end && start < f.end) {
                found.push(SecretMatch {
                    family: m.family,
                    start,
                    end,
                });
            }
        }
        found.sort_by_key(|f| f.start);
    }
    found
}

fn find_in(text: &str) -> Vec<SecretMatch> {
    let compiled = &*COMPILED;
    let mut wanted = vec![false; RULES.len()];
    if dotted_token(text.as_bytes()) {
        for &rule in &compiled.always {
            wanted[rule] = true;
        }
    }
    // Generic assignments are read only around their keywords (the key is at most 40
    // characters before it, the value within a line after it): common words (key, token,
    // password) must not cost a scan of the whole text per rule.
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for m in compiled.keywords.find_overlapping_iter(text) {
        for &rule in &compiled.rules_of_keyword[m.pattern().as_usize()] {
            wanted[rule] = true;
            if matches!(RULES[rule].check, Check::Generic | Check::Comparison) {
                let start = floor_boundary(text, m.start().saturating_sub(250));
                let end = ceil_boundary(text, (m.end() + 320).min(text.len()));
                match windows.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => windows.push((start, end)),
                }
            }
        }
    }
    let mut found: Vec<SecretMatch> = Vec::new();
    let whole = [(0, text.len())];
    for (i, rule) in RULES.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        let spans: &[(usize, usize)] = if matches!(rule.check, Check::Generic | Check::Comparison) {
            &windows
        } else {
            &whole
        };
        for &(from, to) in spans {
            for caps in compiled.regexes[i].captures_iter(&text[from..to]) {
                for (start, end) in candidates(rule, text, from, &caps) {
                    if !found.iter().any(|f| f.start < end && start < f.end) {
                        found.push(SecretMatch {
                            family: rule.family,
                            start,
                            end,
                        });
                    }
                }
            }
        }
    }
    found.sort_by_key(|f| f.start);
    found
}

/// Whether the text has the shape of a dotted bot token (`xxxx.yyyyyy.zzzz`: two dots seven
/// bytes apart), the one family without a keyword.
fn dotted_token(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'.', bytes).any(|i| bytes.get(i + 7) == Some(&b'.') && i >= 23)
}

/// The text with JSON string escapes undone (`\"`, `\\`, `\n`, `\t`, `\r`, `\/`), and for every
/// byte of it (and one past the end) the offset of the byte it came from.
fn unescape(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            if let Some(&(_, next)) = chars.peek() {
                let plain = match next {
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '/' => Some('/'),
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    _ => None,
                };
                if let Some(p) = plain {
                    chars.next();
                    out.push(p);
                    map.push(i);
                    continue;
                }
            }
        }
        let at = out.len();
        out.push(c);
        map.extend(std::iter::repeat_n(i, out.len() - at));
    }
    map.push(text.len());
    (out, map)
}

/// The validated secrets of one regex match: (start, end) ranges.
/// `caps` matched in `text[offset..]`; the ranges returned are in `text`.
fn candidates(
    rule: &Rule,
    text: &str,
    offset: usize,
    caps: &regex::Captures<'_>,
) -> Vec<(usize, usize)> {
    if rule.check == Check::KubernetesData {
        return kubernetes_values(text);
    }
    let generic = rule.check == Check::Generic;
    // Where the key's name starts (the match and the key's group begin with the character
    // before it, a newline say).
    let key_at = caps.get(1).or(caps.get(0)).map_or(0, |m| {
        m.start()
            + m.as_str()
                .find(|c: char| c.is_ascii_alphanumeric())
                .unwrap_or(0)
    });
    if generic && sql_statement(text, offset + key_at) {
        return Vec::new();
    }
    let comparison = rule.check == Check::Comparison;
    let value = if generic {
        let key = caps.get(1).map(|k| k.as_str()).unwrap_or("");
        if !credential_key(key) {
            return Vec::new();
        }
        caps.get(2).or(caps.get(3))
    } else if comparison {
        caps.get(1)
    } else {
        caps.get(1).or(caps.get(0))
    };
    let Some(value) = value else {
        return Vec::new();
    };
    let secret = value.as_str();
    let ok = match rule.check {
        Check::Plain => !placeholder(secret) && entropy(secret) >= rule.entropy,
        Check::Jwt => jwt_header_ok(secret) && !placeholder(secret),
        Check::PemBody => pem_body_ok(secret),
        Check::Generic => generic_value_ok(caps.get(1).map(|k| k.as_str()).unwrap_or(""), secret),
        Check::Comparison => {
            generic_value_ok(caps.get(2).map(|k| k.as_str()).unwrap_or(""), secret)
        }
        Check::Password => password_ok(secret, rule.entropy),
        Check::Random => {
            !placeholder(secret)
                && entropy(secret) >= rule.entropy
                && secret.bytes().any(|b| b.is_ascii_digit())
                && secret.bytes().any(|b| b.is_ascii_alphabetic())
        }
        Check::KubernetesData => false,
    };
    if ok {
        vec![(offset + value.start(), offset + value.end())]
    } else {
        Vec::new()
    }
}

/// Whether a key names a credential (and not its id, name, file, length or URL).
fn credential_key(key: &str) -> bool {
    let key = key.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let lower = key.to_ascii_lowercase();
    let lower = lower.trim_matches(|c: char| c == '.' || c == '-' || c == '_');
    const NOT_SECRET_SUFFIXES: [&str; 30] = [
        "id",
        "ids",
        "name",
        "names",
        "file",
        "path",
        "url",
        "uri",
        "size",
        "length",
        "len",
        "type",
        "version",
        "format",
        "selector",
        "pressed",
        "count",
        "field",
        "header",
        "source",
        "endpoint",
        "store",
        "storetosecrets",
        "method",
        "mode",
        "policy",
        "label",
        "index",
        "prefix",
        "hint",
    ];
    let last = lower.rsplit(['_', '.', '-']).next().unwrap_or(lower);
    if NOT_SECRET_SUFFIXES.contains(&last) {
        return false;
    }
    // camelCase suffixes: credentialId, keyVaultName, tokenUrl.
    let original_last = key.rsplit(['_', '.', '-']).next().unwrap_or(key);
    if let Some(upper) = original_last.rfind(|c: char| c.is_ascii_uppercase()) {
        let tail = original_last[upper..].to_ascii_lowercase();
        if NOT_SECRET_SUFFIXES.contains(&tail.as_str()) {
            return false;
        }
    }
    const NOT_SECRET_WORDS: [&str; 12] = [
        "public", "csrf", "xsrf", "keyvault", "keystore", "keytab", "keyboard", "keypair",
        "monkey", "donkey", "turkey", "author",
    ];
    !NOT_SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// A generic assignment's value: long or random enough, not a placeholder, not an identifier.
fn generic_value_ok(key: &str, value: &str) -> bool {
    let value = value.trim().trim_end_matches([',', ';', ')']);
    if value.chars().count() < 6 || placeholder(value) || example_value(value) {
        return false;
    }
    let lower_key = key.to_ascii_lowercase();
    let password_like = ["pass", "pwd", "secret"]
        .iter()
        .any(|w| lower_key.contains(w));
    // Code, not a value: `password = getPassword()`, `token = self.token`, `secret = None`.
    if looks_like_code(value) || uuid_like(value) {
        return false;
    }
    // Code: a call or an expression left unquoted (`token = providers.filter(`).
    if value.contains(['(', ')'])
        && !value.contains(' ')
        && value.len() < 40
        && value.chars().filter(|c| *c == '(').count() > 0
        && value.split('(').next().is_some_and(|head| {
            head.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
    {
        return false;
    }
    // Prose in quotes: `password: "must be at least 8 characters"`.
    if value.matches(' ').count() >= 2 {
        return false;
    }
    let e = entropy(value);
    if password_like {
        e >= 2.8
    } else {
        value.len() >= 10 && e >= 3.5 && !value.contains(' ')
    }
}

/// Words and sequences people write where a real value would go (generic assignments only:
/// vendors' own test tokens are made of such things and still have the token's shape).
fn example_value(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    const WORDS: [&str; 17] = [
        "fake",
        "example",
        "sample",
        "dummy",
        "changeme",
        "change_me",
        "your ",
        "placeholder",
        "pass",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "1234567890",
        "0123456789",
        "redacted",
    ];
    if WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    // A shell or template variable inside: $HOME, $GIT_COMMIT, %VAR%.
    let bytes = value.as_bytes();
    if bytes.windows(3).any(|w| {
        w[0] == b'$' && w[1].is_ascii_uppercase() && (w[2].is_ascii_uppercase() || w[2] == b'_')
    }) {
        return true;
    }
    // A short unit repeated: abcd1234abcd1234..., 0x0x0x0x.
    repeated_unit(&lower)
}

/// Whether the value is (mostly) one unit of 2 to 8 characters written again and again.
fn repeated_unit(value: &str) -> bool {
    let b = value.as_bytes();
    (2..=8).any(|unit| {
        b.len() >= unit * 3
            && b.chunks(unit)
                .take(3)
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[0] == w[1])
    })
}

/// Whether the statement holding `at` is a SQL statement that creates or changes a user or a role
/// (`ALTER USER x WITH PASSWORD '...'`): the text of a query or a migration, where the value is
/// the statement's example or a stored hash (`md5...`), not a configuration's credential.
fn sql_statement(text: &str, at: usize) -> bool {
    const VERBS: [&str; 3] = ["create ", "alter ", "grant "];
    const OBJECTS: [&str; 9] = [
        " user ",
        " role ",
        " login ",
        " identified ",
        // Where a database keeps credentials for reaching elsewhere (Snowflake stages and
        // integrations, SQL Server credentials, Oracle links, foreign servers).
        " stage ",
        " integration ",
        " credential ",
        " database link ",
        " server ",
    ];
    let names_object = |s: &str| OBJECTS.iter().any(|w| s.contains(w));
    // The line: a statement written on one line, whatever comes before it on the line.
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..at].to_ascii_lowercase();
    if (VERBS.iter().any(|w| line.contains(w)) && names_object(&line))
        || line.contains("identified by")
    {
        return true;
    }
    // A statement over several lines (`CREATE LOGIN x\nWITH PASSWORD = '...'`): from the end
    // of the previous one (`;`) or a blank line, at most a few lines back, it must open with
    // the verb (comments and prose that mention creating a user are not statements).
    let from = super::floor_boundary(text, at.saturating_sub(400));
    let before = &text[from..at];
    let start = from
        + [before.rfind(';'), before.rfind("\n\n")]
            .into_iter()
            .flatten()
            .max()
            .map_or(0, |i| i + 1);
    let mut statement = text[start..at].to_ascii_lowercase();
    loop {
        let trimmed = statement
            .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '+'));
        let trimmed = ["\\n", "\\r", "\\t"]
            .iter()
            .find_map(|e| trimmed.strip_prefix(e))
            .unwrap_or(trimmed);
        if trimmed.len() == statement.len() {
            break;
        }
        statement = trimmed.to_string();
    }
    VERBS.iter().any(|w| statement.starts_with(w)) && names_object(&statement)
}

/// A password in a URL, a `curl -u`, a config entry: not empty, not a variable, not a word
/// everyone writes in examples.
fn password_ok(value: &str, min_entropy: f32) -> bool {
    let secret = value
        .split_once(':')
        .map(|(user, pass)| if pass.is_empty() { user } else { pass })
        .unwrap_or(value);
    secret.len() >= 4
        && !placeholder(secret)
        && !example_value(secret)
        && !secret.contains(['{', '(', '<', '$'])
        && entropy(secret) >= min_entropy
}

/// An expression rather than a literal: a call, a member access, a keyword, a variable.
fn looks_like_code(value: &str) -> bool {
    const WORDS: [&str; 14] = [
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "self",
        "this",
        "os.environ",
        "process.env",
        "getenv",
        "env(",
        "config.",
        "settings.",
    ];
    let lower = value.to_ascii_lowercase();
    // A word alone, or followed by what continues an expression (`self.token`, `null,`,
    // `config.x`): `thisIsDog11` and `trueblue99` are values that start with a keyword.
    let continues = |rest: &str| {
        rest.is_empty() || rest.starts_with(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
    };
    if WORDS.iter().any(|w| {
        lower
            .strip_prefix(w)
            .is_some_and(|rest| !w.chars().all(|c| c.is_ascii_alphabetic()) || continues(rest))
    }) {
        return true;
    }
    // identifier.identifier or identifier(...): code, when there is nothing else in it.
    let ident_chars = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if let Some((a, b)) = value.split_once('.') {
        if ident_chars(a)
            && b.split('.').all(ident_chars)
            && a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && !b.is_empty()
            && b.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        {
            return true;
        }
    }
    value.ends_with("()") || (value.ends_with(')') && value.contains('(') && !value.contains(' '))
}

fn uuid_like(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A value written to be replaced: `xxxx`, `<token>`, `${VAR}`, `changeme`, `****`.
pub fn placeholder(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    let first = v.as_bytes()[0];
    // A whole template: ${X}, {{ x }}, <x>, $X, %(x)s, [x].
    if (v.starts_with("${") || v.starts_with("{{") || v.starts_with("$("))
        && (v.ends_with('}') || v.ends_with(')'))
        && !v[2..v.len().saturating_sub(1)].contains(['}', ')'])
    {
        return true;
    }
    if (first == b'<' && v.ends_with('>')) || (first == b'[' && v.ends_with(']')) {
        return true;
    }
    if first == b'$'
        && v[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return true;
    }
    if v.starts_with("%(") || v.starts_with("{") && v.ends_with('}') && v.len() < 40 {
        return true;
    }
    const WORDS: [&str; 12] = [
        "xxxx",
        "****",
        "....",
        "####",
        "placeholder",
        "your_",
        "your-",
        "yourtoken",
        "yourkey",
        "yourpassword",
        "redacted",
        "<your",
    ];
    if WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    const EXACT: [&str; 10] = [
        "password",
        "passwd",
        "secret",
        "token",
        "pass",
        "username:password",
        "user:pass",
        "username:token",
        "test",
        "none",
    ];
    if EXACT.contains(&lower.as_str()) {
        return true;
    }
    // One character repeated, or two alternating: aaaaaa, 0000, abababab.
    let distinct: std::collections::BTreeSet<char> = v.chars().filter(|c| *c != '-').collect();
    distinct.len() <= 2
}

/// Shannon entropy in bits per character.
pub fn entropy(value: &str) -> f32 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in value.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f32;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

/// A JWT's header decodes to a JSON object naming `alg` or `typ`.
fn jwt_header_ok(token: &str) -> bool {
    let header = token.split('.').next().unwrap_or("");
    let Some(decoded) = base64_decode(header) else {
        return false;
    };
    let text = String::from_utf8_lossy(&decoded);
    let t = text.trim_start();
    t.starts_with('{') && (t.contains("\"alg\"") || t.contains("\"typ\""))
}

/// A PEM private key with a body (the armour alone, or a few characters, is an example).
fn pem_body_ok(block: &str) -> bool {
    let body: usize = block
        .lines()
        .filter(|l| !l.contains("-----"))
        .map(|l| {
            l.trim()
                .trim_end_matches("\\n")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
                .count()
        })
        .sum();
    let inline: usize = block
        .split("-----")
        .nth(2)
        .map(|b| {
            b.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
                .count()
        })
        .unwrap_or(0);
    body.max(inline) >= 10 && !placeholder(block.split("-----").nth(2).unwrap_or(""))
}

/// The base64 values under `data:` of a Kubernetes Secret manifest.
fn kubernetes_values(text: &str) -> Vec<(usize, usize)> {
    static VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?m)^[ \t\n\r\x0B\x0C+./:0-90-9A-Za-z_-]*?[ \t]+['\x22]?[0-9A-Za-z_.\-]+['\x22]?:[ \t\n\r\x0B\x0C]*['\x22>|]?[ \t]*\n?\+?[ \t]*['\x22]?([A-Za-z0-9+/]{4,}={0,2})['\x22]?[ \t]*$"#)
            .expect("valid regex")
    });
    let Some(data) = text.find("data:") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for caps in VALUE.captures_iter(&text[data..]) {
        if let Some(v) = caps.get(1) {
            let value = v.as_str();
            if value.len() >= 8
                && (value.ends_with('=') || value.len() % 4 == 0)
                && base64_decode(value).is_some()
                && !placeholder(value)
            {
                out.push((data + v.start(), data + v.end()));
            }
        }
    }
    out
}

/// Standard or URL-safe base64, padding optional: `None` when anything else is in it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let (decoded, used) = crate::threat::decode::base64_prefix(text.as_bytes(), usize::MAX);
    (used == text.len()).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families(text: &str) -> Vec<&'static str> {
        find(text).into_iter().map(|m| m.family).collect()
    }

    #[test]
    fn vendor_formats_are_found_and_the_value_located() {
        let text = "export AWS_ACCESS_KEY_ID=AKIAQYLPMN5HHHFPZAM2\n";
        let found = find(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].family, "aws");
        assert_eq!(&text[found[0].start..found[0].end], "AKIAQYLPMN5HHHFPZAM2");
        assert_eq!(
            families("token: ghp_R4nd0mT0k3nV4lu3W1thThirtySixChars12"),
            ["github"]
        );
        assert_eq!(
            families("SLACK=xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1"),
            ["slack"]
        );
        assert_eq!(families("glpat-hellOworld380_testin"), ["gitlab"]);
    }

    #[test]
    fn placeholders_and_examples_are_not_secrets() {
        for text in [
            "akiazzzzzzzzzzzzzzzz",
            "xoxb-xxxxxxxxx-xxxxxxxxxx-xxxxxxxxxxxx",
            "-----BEGIN OPENSSH PRIVATE KEY----------END OPENSSH PRIVATE KEY-----",
            "password = ${link}",
            "api_key = \"\"",
            "password = \"somefakekey\"",
            "curl -u \"${_username}:${_password}\"",
            "jobCredentialsId: 'f4aeb6bc-2a25-458a-8111-9be9e502c0e7'",
            "PuttyPassword=0",
            "ALTER USER my_user SET password = 'abc123'",
            // A statement over several lines.
            "CREATE LOGIN [Barry]\nWITH PASSWORD = 'sdjklalie8rew8337!$d',\nCHECK_POLICY = OFF;",
            "ALTER STAGE my_ext_stage SET\n    CREDENTIALS=(AWS_KEY_ID='d4c3b2a1' AWS_SECRET_KEY='z9y8x7w6');",
            // The same inside a JSON string.
            "x;\\nALTER STAGE s SET\\n    CREDENTIALS=(AWS_KEY_ID='d4c3b2a1' AWS_SECRET_KEY='z9y8x7w6');",
            // Code, not values.
            "token = self.token",
            "password = None",
            "secret = this.secretValue",
        ] {
            assert!(families(text).is_empty(), "{text}: {:?}", families(text));
        }
    }

    #[test]
    fn structural_secrets_are_validated() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(families(&format!("Authorization: Bearer {jwt}")), ["jwt"]);
        // eyJ... that is not a JWT header.
        assert!(families("eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjM0In0").is_empty());
        let key = format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
            "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi4mTVQ2Jg3AqY9Q1cZfZmHcdkS"
        );
        assert_eq!(families(&key), ["private_key"]);
        assert_eq!(
            families("DATABASE_URL=postgres://app:s3cr3tP4ss@db.internal:5432/app"),
            ["connection_string"]
        );
        assert!(families("postgres://user:password@localhost/db").is_empty());
        assert_eq!(
            families("db_password = \"hunter2-Correct-Horse\""),
            ["generic_password"]
        );
        // Values that merely start with a keyword of code.
        assert_eq!(
            families("administrator_login_password = \"thisIsDog11\""),
            ["generic_password"]
        );
        assert_eq!(families("db_pass: trueBlue-2024"), ["generic_password"]);
        // Prose about creating a user is not a SQL statement.
        assert_eq!(
            families("# create the user account first\napp_password = 's3cr3tP4ss!x'"),
            ["generic_password"]
        );
        // A Secret manifest in a diff: the value line starts with the diff's marker.
        let manifest = "+apiVersion: v1\n+kind: Secret\n+data:\n+  .dockercfg: |\n+    eyJhdXRocyI6eyJodHRwczovL2V4YW1wbGUvdjEvIjp7ImF1dGgiOiJvcGVuc2VzYW1lIn19fQo=\n";
        assert_eq!(families(manifest), ["kubernetes"]);
    }
}
