//! Error chains for messages: an error and its sources joined into one line, so a message tells the whole
//! story (the store's, the HTTP client's and the operating system's part of it) without repeating itself.

/// An error and its sources joined with ": ", leaving out a source whose text the message already holds
/// (libraries often repeat their source's text in their own).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
