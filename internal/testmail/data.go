package testmail

// person is a correspondent. Names may contain non-ASCII characters; latin1
// marks names that are representable in ISO-8859-1.
type person struct {
	name   string
	addr   string
	latin1 bool
}

// owner is the account the generated mailboxes belong to.
var owner = person{name: "Alex Morgan", addr: "alex@example.com", latin1: true}

var asciiPeople = []person{
	{"Alice Johnson", "alice.johnson@example.com", true},
	{"Bob Smith", "bob@example.org", true},
	{"Carol Nguyen", "carol.nguyen@example.net", true},
	{"Dave O'Connor", "dave.oconnor@example.com", true},
	{"Eve Martin, PhD", "eve.martin@research.example.org", true},
	{"Priya Raghunathan", "priya@example.in", true},
	{"Support Team", "support@helpdesk.example.net", true},
	{"", "noreply@notifications.example.com", true},
	{"Frank Ellis", "frank.ellis@example.co.uk", true},
	{"Grace Kim", "grace.kim@example.kr", true},
}

var latin1People = []person{
	{"José Müller", "jose.mueller@example.de", true},
	{"Zoë Ångström", "zoe.angstrom@example.se", true},
	{"Björn Østergaard", "bjorn@example.dk", true},
	{"Françoise Lefèvre", "francoise.lefevre@example.fr", true},
	{"Iñaki Ibáñez", "inaki@example.es", true},
}

var unicodePeople = []person{
	{"田中 太郎", "tanaka@example.jp", false},
	{"Иван Петров", "ivan.petrov@example.ru", false},
	{"李小龍", "li@example.cn", false},
	{"Αλέξανδρος Παπαδόπουλος", "alexandros@example.gr", false},
	{"Nguyễn Văn Anh", "anh.nguyen@example.vn", false},
}

// topics are ASCII subject lines. None contains a search token.
var topics = []string{
	"Weekly status update",
	"Migration plan for the mail servers",
	"Lunch on Friday?",
	"Quarterly report draft",
	"Design review notes",
	"Travel arrangements for the conference",
	"Server maintenance window this weekend",
	"Question about the contract renewal",
	"Team offsite agenda",
	"Release notes for version 2.4",
	"Your order has shipped",
	"Password policy reminder",
	"Photos from the weekend",
	"Feedback on the proposal",
	"Holiday schedule",
	"New hire onboarding checklist",
	"Backup job failed on host db-03",
	"Call notes with the customer",
	"Reminder: expense reports due",
	"Can you review this pull request?",
	"Draft of the blog post",
	"Meeting minutes from Tuesday",
	"Newsletter: spring edition",
	"Parking garage closed on Monday",
	"Re-org announcement",
	"Access request for the shared drive",
}

// utf8Topics are subject fragments with characters outside ISO-8859-1.
var utf8Topics = []string{
	"Réunion d'équipe — ordre du jour",
	"日本語の件名テスト",
	"Отчёт за неделю",
	"Grüße aus München 🍺",
	"Προσφορά για το έργο",
	"Báo cáo tháng này",
	"会議のお知らせ：来週の予定",
}

// latin1Topics are subject fragments representable in ISO-8859-1.
var latin1Topics = []string{
	"Réunion prévue à Genève",
	"Übersicht für März",
	"Año nuevo, señor",
	"Smørrebrød på fredag",
	"Café après la réunion",
}

// sentences are ASCII body sentences. None contains a search token.
var sentences = []string{
	"Thanks for the quick turnaround on this.",
	"Could you take a look before the end of the week?",
	"I have attached the latest version for your review.",
	"Let me know if anything is unclear.",
	"The migration finished without errors last night.",
	"We still need sign-off from the legal team.",
	"Can we move the call to Tuesday afternoon?",
	"The numbers look good compared to last quarter.",
	"Please find my comments inline below.",
	"I will be out of the office until Monday.",
	"The server was restarted at 02:00 UTC and is healthy again.",
	"Happy to discuss this over coffee.",
	"Here is the summary we agreed on during the call.",
	"The customer asked for a revised timeline.",
	"Our backup window is now between 01:00 and 03:00.",
	"I pushed a fix; it should be in tomorrow's build.",
	"Feel free to forward this to anyone who might be interested.",
	"The shipment is expected to arrive on Wednesday.",
	"We should archive the old project folders soon.",
	"Please remember to rotate your credentials before Friday.",
	"The slides from the presentation are on the shared drive.",
	"Two of the five action items are done; the rest are in progress.",
	"I could not reproduce the issue on my machine.",
	"The vendor confirmed the price will stay the same next year.",
	"See the notes below for the details of the rollout.",
	"Let's keep the discussion in this thread.",
	"We had 42 participants, which is a new record.",
	"The test suite takes about 3 minutes now, down from 11.",
	"A = B + C only holds when the cache is warm.",
	"Sorry for the late reply, it has been a busy week.",
}

// utf8Sentences contain characters outside ISO-8859-1.
var utf8Sentences = []string{
	"日本語のテキストも正しく表示されるはずです。",
	"Привет! Это тестовое сообщение для проверки кодировки.",
	"Emoji check: ✅ 📎 🚀 — all good?",
	"Ελληνικά κείμενα επίσης υποστηρίζονται.",
	"Xin chào, đây là một tin nhắn thử nghiệm.",
	"中文内容也应该可以正常显示。",
	"Merci pour la réunion d’hier, c’était très utile.",
}

// latin1Sentences are representable in ISO-8859-1.
var latin1Sentences = []string{
	"Merci pour la réunion d'hier, c'était très utile.",
	"Grüße aus München, bis nächste Woche!",
	"Ærlig talt, så er det fint med mig.",
	"¿Podemos vernos el miércoles por la mañana?",
	"Der Bericht ist fertig, die Übersicht folgt später.",
	"Følg op på mødet i går, tak.",
}

var greetings = []string{"Hi %s,", "Hello %s,", "Dear %s,", "Hey %s,", "Good morning %s,"}

var signoffs = []string{"Best regards,", "Thanks,", "Cheers,", "Kind regards,", "Best,", "Talk soon,"}

var mailers = []string{
	"Mozilla Thunderbird 115.6.0",
	"Microsoft Outlook 16.0",
	"Apple Mail (2.3774.300.61.1.2)",
	"Evolution 3.50.2",
	"Mutt/2.2.12 (2023-09-09)",
	"Roundcube Webmail/1.6.5",
}

type attachmentKind struct {
	ctype string
	names []string
	magic []byte
}

var attachmentKinds = []attachmentKind{
	{"application/pdf", []string{"report-2019.pdf", "Übersicht März.pdf", "contract_v3.pdf"}, []byte("%PDF-1.4\n")},
	{"image/png", []string{"screenshot.png", "scan 17.png", "diagram.png"}, []byte("\x89PNG\r\n\x1a\n")},
	{"image/jpeg", []string{"photo_0042.jpg", "IMG_2024.JPG"}, []byte("\xff\xd8\xff\xe0")},
	{"application/zip", []string{"logs.zip", "export-all.zip"}, []byte("PK\x03\x04")},
	{"application/octet-stream", []string{"data.bin", "議事録.dat", "firmware-1.2.3.img"}, nil},
	{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", []string{"notes.docx", "Protokoll Sitzung.docx"}, []byte("PK\x03\x04")},
}
