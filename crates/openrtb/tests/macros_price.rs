//! Macro substitution, clearing-price parsing, micros ↔ price, FX conversion and currency
//! choice; with properties for "never panics" and exact round trips.

use adp_openrtb::macros::substitute_into;
use adp_openrtb::price::*;
use adp_openrtb::{substitute, Macro, MacroValues};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;

fn values() -> MacroValues<'static> {
    MacroValues {
        auction_id: Some("req-1"),
        bid_id: Some("bid-9"),
        imp_id: Some("imp-2"),
        seat_id: Some("seat-a"),
        ad_id: Some("ad-5"),
        price: Some("1.2345"),
        currency: Some("EUR"),
        mbr: Some("0.85"),
        loss: Some("102"),
        min_to_win: Some("1.01"),
        multiplier: Some("37.5"),
        imp_ts: Some("1764255600000"),
        discount_pct: None,
        discount_cpm: None,
    }
}

#[test]
fn every_macro_is_substituted() {
    let v = values();
    let template: String = Macro::ALL.iter().map(|m| format!("{}={};", m.name(), m.placeholder())).collect();
    assert_eq!(
        substitute(&template, &v),
        "AUCTION_ID=req-1;AUCTION_BID_ID=bid-9;AUCTION_IMP_ID=imp-2;AUCTION_SEAT_ID=seat-a;AUCTION_AD_ID=ad-5;\
         AUCTION_PRICE=1.2345;AUCTION_CURRENCY=EUR;AUCTION_MBR=0.85;AUCTION_LOSS=102;AUCTION_MIN_TO_WIN=1.01;\
         AUCTION_MULTIPLIER=37.5;AUCTION_IMP_TS=1764255600000;AUCTION_DISCOUNT_PCT=;AUCTION_DISCOUNT_CPM=;"
    );
}

#[test]
fn substitution_cases() {
    let v = values();
    let cases = [
        ("https://x.example/win?p=${AUCTION_PRICE}&c=${AUCTION_CURRENCY}", "https://x.example/win?p=1.2345&c=EUR"),
        ("p=${AUCTION_PRICE:B64}", "p=MS4yMzQ1"),
        ("p=${AUCTION_PRICE:b64}", "p=MS4yMzQ1"),
        ("id=${AUCTION_ID:B64}", "id=cmVxLTE"),
        ("unknown=${AUCTION_FOO}|${FOO}|${X1_2}", "unknown=||"),
        ("unknown enc=${AUCTION_PRICE:AES}", "unknown enc="),
        ("missing value=${AUCTION_DISCOUNT_PCT}|${AUCTION_DISCOUNT_PCT:B64}", "missing value=|"),
        ("unterminated ${AUCTION_PRICE", "unterminated ${AUCTION_PRICE"),
        ("unterminated at end ${", "unterminated at end ${"),
        ("lone $ and { } ${}", "lone $ and { } ${}"),
        ("lower case ${auction_price} kept", "lower case ${auction_price} kept"),
        ("js `${price}` and ${ AUCTION_PRICE } kept", "js `${price}` and ${ AUCTION_PRICE } kept"),
        ("nested ${${AUCTION_PRICE}}", "nested ${1.2345}"),
        ("$${AUCTION_LOSS}$", "$102$"),
        ("adjacent ${AUCTION_LOSS}${AUCTION_LOSS}", "adjacent 102102"),
        ("colon without enc ${AUCTION_PRICE:}", "colon without enc ${AUCTION_PRICE:}"),
        ("ünïcödé ${AUCTION_SEAT_ID} ✓", "ünïcödé seat-a ✓"),
        ("", ""),
    ];
    for (template, want) in cases {
        assert_eq!(substitute(template, &v), want, "{template}");
    }
    // Empty values: every macro disappears.
    assert_eq!(substitute("a${AUCTION_PRICE}b${AUCTION_ID:B64}c", &MacroValues::default()), "abc");
    assert_eq!(substitute("p=${AUCTION_PRICE}", &MacroValues::audit()), "p=AUDIT");
    let mut out = String::from("prefix:");
    substitute_into("${AUCTION_IMP_ID}", &v, &mut out);
    assert_eq!(out, "prefix:imp-2");
    assert_eq!(Macro::from_name("AUCTION_MIN_TO_WIN"), Some(Macro::AuctionMinToWin));
    assert_eq!(Macro::AuctionPrice.placeholder_b64(), "${AUCTION_PRICE:B64}");
}

#[test]
fn price_values_from_notices() {
    let ok = [
        ("1", 1_000_000),
        ("1.5", 1_500_000),
        ("0.000001", 1),
        ("0.0000005", 1),
        ("0.00000049999", 0),
        ("1.2345675", 1_234_568),
        ("1.23456749", 1_234_567),
        (".5", 500_000),
        ("5.", 5_000_000),
        ("+2.25", 2_250_000),
        ("  3.10\n", 3_100_000),
        ("0", 0),
        ("0.000", 0),
        ("007.50", 7_500_000),
        ("1.5E-4", 150),
        ("1.0E-4", 100),
        ("2.5e2", 250_000_000),
        ("1e9", 1_000_000_000_000_000),
        ("999999999.999999", 999_999_999_999_999),
        ("12.3400000000000000000000000000001", 12_340_000),
    ];
    for (s, micros) in ok {
        assert_eq!(parse_price_micros(s), Ok(micros), "{s:?}");
    }
    let bad = [
        ("", PriceErrorReason::Empty),
        ("   ", PriceErrorReason::Empty),
        ("AUDIT", PriceErrorReason::Audit),
        ("audit", PriceErrorReason::Audit),
        ("${AUCTION_PRICE}", PriceErrorReason::Unsubstituted),
        ("%24%7BAUCTION_PRICE%7D", PriceErrorReason::Unsubstituted),
        ("-1", PriceErrorReason::Negative),
        ("-0", PriceErrorReason::Negative),
        ("-0.0001", PriceErrorReason::Negative),
        ("NaN", PriceErrorReason::NotFinite),
        ("inf", PriceErrorReason::NotFinite),
        ("-Infinity", PriceErrorReason::NotFinite),
        ("1000000000.000001", PriceErrorReason::TooLarge),
        ("1e10", PriceErrorReason::TooLarge),
        ("123456789012345678901234567890", PriceErrorReason::TooLarge),
        ("1.2.3", PriceErrorReason::Invalid),
        ("1,5", PriceErrorReason::Invalid),
        ("0x10", PriceErrorReason::Invalid),
        ("1e", PriceErrorReason::Invalid),
        (".", PriceErrorReason::Invalid),
        ("e5", PriceErrorReason::Invalid),
        ("$1", PriceErrorReason::Invalid),
        ("1 USD", PriceErrorReason::Invalid),
        ("MS41", PriceErrorReason::Invalid),
    ];
    for (s, reason) in bad {
        let e = parse_price_micros(s).expect_err(s);
        assert_eq!(e.reason, reason, "{s:?}");
    }
    let long = "9".repeat(500);
    assert_eq!(parse_price_micros(&long).expect_err("long").input.len(), 64);
}

#[test]
fn base64_price_values() {
    assert_eq!(parse_b64_price_micros("MS41"), Ok(1_500_000)); // "1.5"
    assert_eq!(parse_b64_price_micros(&URL_SAFE_NO_PAD.encode("2.345678")), Ok(2_345_678));
    assert_eq!(parse_b64_price_micros(&STANDARD.encode("0.25")), Ok(250_000)); // padded "MC4yNQ=="
    assert_eq!(parse_b64_price_micros("MC4yNQ"), Ok(250_000));
    assert_eq!(parse_b64_price_micros("AUDIT").expect_err("audit").reason, PriceErrorReason::Audit);
    assert_eq!(parse_b64_price_micros("").expect_err("empty").reason, PriceErrorReason::Empty);
    assert_eq!(parse_b64_price_micros("!!!").expect_err("bad").reason, PriceErrorReason::BadBase64);
    assert_eq!(parse_b64_price_micros("_w").expect_err("not utf8").reason, PriceErrorReason::BadBase64);
    assert_eq!(
        parse_b64_price_micros(&URL_SAFE_NO_PAD.encode("-1")).expect_err("neg").reason,
        PriceErrorReason::Negative
    );
    assert_eq!(
        parse_b64_price_micros(&URL_SAFE_NO_PAD.encode("abc")).expect_err("text").reason,
        PriceErrorReason::Invalid
    );
    assert_eq!(parse_price_micros_any("1.5"), Ok(1_500_000));
    assert_eq!(parse_price_micros_any("MS41"), Ok(1_500_000));
    assert_eq!(parse_price_micros_any("nope").expect_err("nope").reason, PriceErrorReason::Invalid);
    // What our template carries comes back: substitute a micros price, read it back.
    let price = format_price_micros(4_200_001);
    let url = substitute("p=${AUCTION_PRICE:B64}", &MacroValues { price: Some(&price), ..MacroValues::default() });
    assert_eq!(parse_b64_price_micros(url.trim_start_matches("p=")), Ok(4_200_001));
}

#[test]
fn micros_and_prices() {
    assert_eq!(micros_to_price(1_500_000), 1.5);
    assert_eq!(micros_to_price(1), 0.000001);
    assert_eq!(micros_to_price(0), 0.0);
    assert_eq!(price_to_micros(1.5), Some(1_500_000));
    assert_eq!(price_to_micros(0.1 + 0.2), Some(300_000), "0.30000000000000004");
    assert_eq!(price_to_micros(1.2345675), Some(1_234_568), "decimal half up, not binary");
    assert_eq!(price_to_micros(0.0000005), Some(1));
    assert_eq!(price_to_micros(4.35), Some(4_350_000), "4.35 * 1e6 is 4349999.999…");
    assert_eq!(price_to_micros(1e-9), Some(0));
    assert_eq!(price_to_micros(-0.0), Some(0));
    assert_eq!(price_to_micros(1e9), Some(MAX_PRICE_MICROS));
    assert_eq!(price_to_micros(1e9 + 1.0), None);
    assert_eq!(price_to_micros(-0.01), None);
    assert_eq!(price_to_micros(f64::NAN), None);
    assert_eq!(price_to_micros(f64::INFINITY), None);
    assert_eq!(format_price_micros(1_500_000), "1.5");
    assert_eq!(format_price_micros(2_000_000), "2");
    assert_eq!(format_price_micros(1), "0.000001");
    assert_eq!(format_price_micros(-1_250_000), "-1.25");
    assert_eq!(format_price_micros(0), "0");
}

#[test]
fn fx_table() {
    let fx = FxTable::parse("USD:1.0, EUR:0.92 ,gbp=0.79,JPY:151.5,").expect("parse");
    assert_eq!(fx.currencies().collect::<Vec<_>>(), ["USD", "EUR", "GBP", "JPY"]);
    assert!(fx.contains("gbp"));
    assert_eq!(fx.rate_of("EUR"), Some(0.92));
    assert_eq!(fx.convert_micros(1_000_000, "USD", "EUR"), Some(920_000));
    assert_eq!(fx.convert_micros(920_000, "EUR", "USD"), Some(1_000_000));
    assert_eq!(fx.convert_micros(1_000_000, "EUR", "GBP"), Some(858_696), "0.79/0.92 = 0.858695652…");
    assert_eq!(fx.convert_micros(1_000_000, "USD", "JPY"), Some(151_500_000));
    assert_eq!(fx.convert_micros(1, "USD", "EUR"), Some(1), "0.92 micro rounds to 1");
    assert_eq!(fx.convert_micros(-1_000_000, "USD", "EUR"), Some(-920_000));
    assert_eq!(fx.convert_micros(-1_000_000, "EUR", "GBP"), Some(-858_696), "half away from zero");
    assert_eq!(fx.convert_micros(5, "CHF", "CHF"), Some(5), "same currency, even unlisted");
    assert_eq!(fx.convert_micros(5, "USD", "CHF"), None);
    assert_eq!(fx.convert_micros(i64::MAX, "USD", "JPY"), None, "overflow");
    // Round trips through a rate do not drift: convert back and forth 1000 times.
    let mut amount = 1_234_567_890;
    for _ in 0..1000 {
        amount =
            fx.convert_micros(fx.convert_micros(amount, "USD", "EUR").expect("to EUR"), "EUR", "USD").expect("back");
    }
    assert_eq!(amount, 1_234_567_890);

    assert_eq!(FxTable::parse("").expect("empty"), FxTable::default());
    assert_eq!("USD:1".parse::<FxTable>().map(|f| f.contains("USD")), Ok(true));
    assert!(matches!(FxTable::parse("USD"), Err(FxError::Entry(_))));
    assert!(matches!(FxTable::parse("US:1"), Err(FxError::Code(_))));
    assert!(matches!(FxTable::parse("EU1:1"), Err(FxError::Code(_))));
    assert!(matches!(FxTable::parse("EUR:0"), Err(FxError::Rate(_))));
    assert!(matches!(FxTable::parse("EUR:-1"), Err(FxError::Rate(_))));
    assert!(matches!(FxTable::parse("EUR:abc"), Err(FxError::Rate(_))));
    assert!(matches!(FxTable::parse("EUR:1,eur:2"), Err(FxError::Duplicate(_))));
}

#[test]
fn currency_choice() {
    let cur = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(pick_currency(&[], &["EUR", "USD"]), Some("USD"), "empty cur means USD");
    assert_eq!(pick_currency(&[], &["EUR"]), None);
    assert_eq!(pick_currency(&cur(&["GBP", "EUR"]), &["EUR", "GBP"]), Some("EUR"), "our preference order");
    assert_eq!(pick_currency(&cur(&["eur"]), &["EUR"]), Some("EUR"));
    assert_eq!(pick_currency(&cur(&["JPY"]), &["EUR", "USD"]), None);
    assert!(currency_allowed::<String>(&[], "usd"));

    let fx = FxTable::parse("USD:1,EUR:0.92,GBP:0.79").expect("fx");
    assert_eq!(fx.pick_currency(&cur(&["EUR", "USD"]), "USD"), Some("USD"), "preferred allowed");
    assert_eq!(fx.pick_currency(&cur(&["GBP", "EUR"]), "USD"), Some("GBP"), "first convertible in request order");
    assert_eq!(fx.pick_currency(&cur(&["JPY"]), "USD"), None, "nothing convertible");
    assert_eq!(fx.pick_currency::<String>(&[], "EUR"), Some("USD"), "empty cur: USD via the table");
    assert_eq!(fx.pick_currency(&cur(&["EUR"]), "CHF"), None, "preferred not in the table");
    assert_eq!(fx.pick_currency(&cur(&["CHF"]), "CHF"), Some("CHF"), "no conversion needed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn substitution_never_panics(template in any::<String>(), price in proptest::option::of(any::<String>())) {
        let v = MacroValues { price: price.as_deref(), ..values() };
        let out = substitute(&template, &v);
        // Text without "${" comes back unchanged.
        if !template.contains("${") {
            prop_assert_eq!(out, template);
        }
    }

    #[test]
    fn substitution_of_macro_soup_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("${".to_string()), Just("}".to_string()), Just(":B64".to_string()), Just(":".to_string()),
            Just("AUCTION_PRICE".to_string()), Just("AUCTION_ID".to_string()), Just("$".to_string()),
            Just("{".to_string()), Just("é".to_string()), "[a-zA-Z0-9_]{0,4}",
        ],
        0..24,
    )) {
        let template = parts.concat();
        let out = substitute(&template, &values());
        // Substitution is one pass, as the spec has it: leftovers of broken macros may join into
        // macro-looking text (`${AUCTION_PRICE${X}}` → `${AUCTION_PRICE}`), which is not
        // substituted again. With at most one `${` nothing can join, so a price macro in the
        // template is always replaced.
        if template.matches("${").count() <= 1 {
            let unsubstituted = out.contains("${AUCTION_PRICE}");
            prop_assert!(!unsubstituted, "{} -> {}", template, out);
        }
    }

    #[test]
    fn micros_string_micros_is_exact(micros in 0..=MAX_PRICE_MICROS) {
        prop_assert_eq!(parse_price_micros(&format_price_micros(micros)), Ok(micros));
    }

    #[test]
    fn micros_price_micros_is_exact(micros in 0..=MAX_PRICE_MICROS) {
        // What an exchange echoes back is our f64, printed shortest (serde_json / Display).
        let price = micros_to_price(micros);
        prop_assert_eq!(price_to_micros(price), Some(micros));
        let printed = serde_json::to_string(&price).expect("serialize");
        prop_assert_eq!(parse_price_micros(&printed), Ok(micros));
    }

    #[test]
    fn b64_price_round_trip(micros in 0..=MAX_PRICE_MICROS) {
        let encoded = URL_SAFE_NO_PAD.encode(format_price_micros(micros));
        prop_assert_eq!(parse_b64_price_micros(&encoded), Ok(micros));
    }

    #[test]
    fn price_parsing_never_panics(s in any::<String>()) {
        let _ = parse_price_micros(&s);
        let _ = parse_b64_price_micros(&s);
        let _ = parse_price_micros_any(&s);
    }

    #[test]
    fn price_to_micros_matches_decimal_rounding(price in 0.0f64..1e9) {
        // Reference: round the shortest decimal with plain string arithmetic, half up.
        let text = format!("{price}");
        let (int, frac) = text.split_once('.').unwrap_or((text.as_str(), ""));
        let mut frac: String = frac.chars().chain(std::iter::repeat('0')).take(7).collect();
        let round_up = frac.pop().is_some_and(|d| d >= '5');
        let want = int.parse::<i64>().expect("int") * 1_000_000 + frac.parse::<i64>().expect("frac") + i64::from(round_up);
        prop_assert_eq!(price_to_micros(price), Some(want));
    }

    #[test]
    fn fx_same_rate_is_identity(amount in -MAX_PRICE_MICROS..=MAX_PRICE_MICROS) {
        let fx = FxTable::parse("USD:1,EUR:0.92,XAU:0.000512,JPY:151.5,EUX:0.92").expect("fx");
        prop_assert_eq!(fx.convert_micros(amount, "EUR", "EUX"), Some(amount));
        prop_assert_eq!(fx.convert_micros(amount, "USD", "USD"), Some(amount));
        // Converting into a currency worth less and back is exact.
        let jpy = fx.convert_micros(amount, "USD", "JPY").expect("jpy");
        prop_assert_eq!(fx.convert_micros(jpy, "JPY", "USD"), Some(amount));
    }
}

#[test]
fn substitution_is_one_pass() {
    // Broken pieces may join into macro-looking text; it is not substituted a second time.
    let out = substitute("${AUCTION_PRICE${AUCTION_PRICEAUCTION_PRICE}}", &values());
    assert_eq!(out, "${AUCTION_PRICE}");
}
