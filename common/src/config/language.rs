//! `language = "de"` in `[defaults]` or a profile: the language of the texts a login shows
//! (prompts, refusals), for the users the profile selects. otpd ships each language's texts;
//! the key only chooses one.

use std::fmt;

use super::error::Invalid;
use super::raw::Text;

/// A language otpd has the login texts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    /// English (`en`), the default.
    #[default]
    English,
    /// German (`de`).
    German,
    /// French (`fr`).
    French,
    /// Spanish (`es`).
    Spanish,
    /// Turkish (`tr`).
    Turkish,
    /// Japanese (`ja`).
    Japanese,
}

impl Language {
    /// Every language, in the order the config error lists them.
    pub const ALL: [Language; 6] = [
        Language::English,
        Language::German,
        Language::French,
        Language::Spanish,
        Language::Turkish,
        Language::Japanese,
    ];

    /// The ISO 639-1 code used in the config.
    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::German => "de",
            Language::French => "fr",
            Language::Spanish => "es",
            Language::Turkish => "tr",
            Language::Japanese => "ja",
        }
    }

    /// The language whose code is exactly `code` (`de`, never `de-DE`): what the config and
    /// `otpctl user set-language` accept.
    pub fn of_code(code: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Every code, for an error that lists them: `en, de, fr, es, tr, ja`.
    pub fn codes() -> String {
        let codes: Vec<&str> = Language::ALL.iter().map(|l| l.code()).collect();
        codes.join(", ")
    }

    /// The language of a code, or of a locale name such as `de_DE.UTF-8` or `pt-BR` by its
    /// first part; `None` for one otpd has no texts in.
    pub fn of(code: &str) -> Option<Language> {
        let primary = code
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Language::of_code(&primary)
    }

    pub(super) fn from_raw(value: &Text) -> Result<Language, Invalid> {
        let raw = value.get_ref();
        Language::of_code(raw).ok_or_else(|| {
            Invalid::new(
                value.span(),
                format!("language must be one of {}, got {raw:?}", Language::codes()),
            )
        })
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locale_names_its_language_by_the_first_part() {
        assert_eq!(Language::of("de_DE.UTF-8"), Some(Language::German));
        assert_eq!(Language::of("ja-JP"), Some(Language::Japanese));
        assert_eq!(Language::of("TR"), Some(Language::Turkish));
        assert_eq!(Language::of("pt_BR"), None);
        assert_eq!(Language::of(""), None);
    }

    #[test]
    fn every_code_reads_back_as_its_language() {
        for language in Language::ALL {
            assert_eq!(Language::of(language.code()), Some(language));
        }
    }
}
