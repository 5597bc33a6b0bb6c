//! markup: what the page or player renders for a chosen creative, with the tracking URLs
//! woven in — banner HTML or image, VAST for video, a JSON asset bundle for native.

use adp_domain::CreativeContent;

/// Escapes text for an HTML attribute or element.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    html_escape_into(&mut out, s);
    out
}

/// Appends `s` to `out`, escaped for an HTML attribute or element.
/// Whether `s` has a character [`html_escape_into`] replaces. Most URLs and texts have none: a
/// pass without early exit (which the compiler vectorises) says so, and they are copied whole.
pub fn needs_html_escape(s: &str) -> bool {
    s.bytes().fold(false, |any, b| any | matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
}

pub fn html_escape_into(out: &mut String, s: &str) {
    if !needs_html_escape(s) {
        out.push_str(s);
        return;
    }
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        // The special characters are ASCII, so `i` is always a char boundary.
        out.push_str(&s[from..i]);
        out.push_str(rep);
        from = i + 1;
    }
    out.push_str(&s[from..]);
}

/// CDATA cannot contain `]]>`; split it where it occurs.
fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// Appends the impression pixel; none when there is no impression URL (RTB: the exchange's
/// billing notice is the impression).
fn push_pixel(out: &mut String, imp_html: &str) {
    if !imp_html.is_empty() {
        out.push_str("<img src=\"");
        out.push_str(imp_html);
        out.push_str("\" width=\"1\" height=\"1\" style=\"display:none\" alt=\"\">");
    }
}

/// Bytes of the pixel's fixed part.
const PIXEL_LEN: usize = 70;

/// The tracking URLs of one ad, plain (for VAST and native) and HTML-escaped (for banners).
pub struct Tracking<'a> {
    pub imp: &'a str,
    pub click: &'a str,
    pub imp_html: &'a str,
    pub click_html: &'a str,
}

impl<'a> Tracking<'a> {
    /// For URLs not known to be escaped yet.
    pub fn escaping(imp: &'a str, click: &'a str, storage: &'a mut (String, String)) -> Tracking<'a> {
        *storage = (html_escape(imp), html_escape(click));
        Tracking { imp, click, imp_html: &storage.0, click_html: &storage.1 }
    }
}

/// Renders the markup of `content` for a slot of `w`×`h`.
pub fn render(content: &CreativeContent, w: u32, h: u32, t: &Tracking<'_>) -> String {
    let (imp_url, click_url) = (t.imp, t.click);
    match content {
        CreativeContent::BannerImage { image_url, alt } => {
            // Written in place (this is on every banner decision): no intermediate strings.
            let alt = alt.as_deref().unwrap_or("");
            let mut out = String::with_capacity(
                160 + t.click_html.len() + image_url.len() + alt.len() + t.imp_html.len() + PIXEL_LEN,
            );
            let mut num = itoa::Buffer::new();
            out.push_str("<a href=\"");
            out.push_str(t.click_html);
            out.push_str("\" target=\"_blank\" rel=\"noopener\"><img src=\"");
            html_escape_into(&mut out, image_url);
            out.push_str("\" width=\"");
            out.push_str(num.format(w));
            out.push_str("\" height=\"");
            out.push_str(num.format(h));
            out.push_str("\" alt=\"");
            html_escape_into(&mut out, alt);
            out.push_str("\" border=\"0\"></a>");
            push_pixel(&mut out, t.imp_html);
            out
        }
        CreativeContent::BannerHtml { html } => {
            let mut body = html.replace("%%CLICK_URL%%", t.click_html);
            push_pixel(&mut body, t.imp_html);
            body
        }
        CreativeContent::Vast { xml: Some(xml), .. } if imp_url.is_empty() => xml.clone(),
        CreativeContent::Vast { xml: Some(xml), .. } => {
            let impression = format!("<Impression>{}</Impression>", cdata(imp_url));
            // Add our impression tracker to the first InLine or Wrapper element.
            for tag in ["<InLine>", "<Wrapper>"] {
                if let Some(i) = xml.find(tag) {
                    let at = i + tag.len();
                    return format!("{}{impression}{}", &xml[..at], &xml[at..]);
                }
            }
            xml.clone()
        }
        CreativeContent::Vast { url, .. } => format!(
            "<VAST version=\"4.0\"><Ad><Wrapper><AdSystem>AdPlatform</AdSystem><VASTAdTagURI>{}</VASTAdTagURI>\
             {}<Creatives><Creative><Linear><VideoClicks><ClickTracking>{}</ClickTracking>\
             </VideoClicks></Linear></Creative></Creatives></Wrapper></Ad></VAST>",
            cdata(url.as_deref().unwrap_or("")),
            if imp_url.is_empty() { String::new() } else { format!("<Impression>{}</Impression>", cdata(imp_url)) },
            cdata(click_url)
        ),
        CreativeContent::Native { title, body, image_url, icon_url, cta, sponsored_by } => serde_json::json!({
            "title": title, "body": body, "image_url": image_url, "icon_url": icon_url, "cta": cta,
            "sponsored_by": sponsored_by, "click_url": click_url, "impression_url": imp_url,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_escapes_and_carries_trackers() {
        let c = CreativeContent::BannerImage {
            image_url: "https://x.example/a.png?a=1&b=2".into(),
            alt: Some("\"hi\"".into()),
        };
        let mut store = Default::default();
        let m = render(
            &c,
            300,
            250,
            &Tracking::escaping("https://t.example/imp?p=1&s=2", "https://t.example/click?p=3&s=4", &mut store),
        );
        assert!(m.contains("href=\"https://t.example/click?p=3&amp;s=4\""), "{m}");
        assert!(m.contains("alt=\"&quot;hi&quot;\""), "{m}");
        assert!(m.contains("src=\"https://t.example/imp?p=1&amp;s=2\""), "{m}");
        assert_eq!(
            m,
            "<a href=\"https://t.example/click?p=3&amp;s=4\" target=\"_blank\" rel=\"noopener\">\
             <img src=\"https://x.example/a.png?a=1&amp;b=2\" width=\"300\" height=\"250\" alt=\"&quot;hi&quot;\" \
             border=\"0\"></a><img src=\"https://t.example/imp?p=1&amp;s=2\" width=\"1\" height=\"1\" \
             style=\"display:none\" alt=\"\">"
        );
        let bare = render(&c, 300, 250, &Tracking { imp: "", click: "c", imp_html: "", click_html: "c" });
        assert!(bare.ends_with("border=\"0\"></a>"), "no impression URL, no pixel: {bare}");
    }

    #[test]
    fn vast_inline_gets_an_impression_tracker() {
        let c = CreativeContent::Vast {
            xml: Some("<VAST version=\"4.0\"><Ad><InLine><AdSystem>x</AdSystem></InLine></Ad></VAST>".into()),
            url: None,
            duration_secs: 15,
            mimes: vec![],
        };
        let mut store = Default::default();
        let m =
            render(&c, 640, 360, &Tracking::escaping("https://t.example/imp", "https://t.example/click", &mut store));
        assert!(m.contains("<InLine><Impression><![CDATA[https://t.example/imp]]></Impression><AdSystem>"), "{m}");
    }
}
